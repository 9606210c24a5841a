"""uvicorn and clients that close before sending anything (claim L12; uvicorn #1199, PRs
#1332, #1354, #1355).

A load balancer's TCP health check connects and closes without a request (#1199: thousands
of server ends in CLOSE_WAIT behind an AWS load balancer). From 0.14.0 uvicorn accepted
through an asyncio-streams handler (#869): when the FIN reached the stream reader before
the handler handed the transport to the HTTP protocol, that protocol never heard of it and
nothing closed the socket. #1332 (0.17.1) passes the reader's end of file on, and the
protocol closes; 0.17.2 reverted #1332 (#1354) and dropped the streams handler (#1355).

Real uvicorn children (uvloop + httptools, as gunicorn's UvicornWorker runs it): 0.15.0
(#1199's release), 0.17.0 (the last before #1332) and 0.17.1, installed under ``RELEASES``
(``nox -s realworld``; without them the run is skipped), then the installed release. Each
is paused (SIGSTOP) while the clients connect and close, so their FINs are queued before
its event loop runs, as under load. The fix shown working: the upgrade.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.judges.servers import EarlyCloseRun, HealthChecks
from tcplab.measure import owner, state_of, stays

OLD = ("0.15.0", "0.17.0", "0.17.1")
CLOSERS, WINDOW = 4, 3.0
STACK = ("--loop", "uvloop", "--http", "httptools", "--timeout-keep-alive", "1")
scenario = Scenario(
    id="rw-uvicorn-closers", title="uvicorn: clients that close before sending (health checks)",
    claims=("L12",), tags=("realworld",), timeout=90.0,
    requires=("python:uvicorn", "python:uvloop", "python:httptools",
              *(f"release:uvicorn=={version}" for version in OLD)),
)


async def measure(lab: Lab, version: str | None) -> EarlyCloseRun:
    release = None if version is None else servers.release("uvicorn", version)
    async with servers.uvicorn(lab, *STACK, release=release) as server:
        with servers.paused(server):
            closers = [await servers.dial(lab, server, f"closer{i}") for i in range(CLOSERS)]
            for conn in closers:
                await conn.client.close()
        held = await stays(closers[0].server, TcpState.CLOSE_WAIT, up_to=WINDOW)
        ends = [conn.server.observe() for conn in closers]
        return EarlyCloseRun(
            server.version, "uvloop/httptools", WINDOW, CLOSERS,
            sum(state_of(end) == "CLOSE_WAIT" for end in ends), held,
            owner(ends[0], server.pids()), state_of(closers[0].client.observe()))


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    older = tuple([await measure(lab, version) for version in OLD])
    verdicts.judge("L12", HealthChecks(await measure(lab, None), older))


if __name__ == "__main__":
    scenario.main()

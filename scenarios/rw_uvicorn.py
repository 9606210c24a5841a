"""uvicorn and clients that send nothing (claim L04; uvicorn #1199, PRs #1192, #1332, #1354).

uvicorn arms its keep-alive timer only once a response is complete, so nothing times out a
connection that never sent a request. In 0.14.0..0.17.1 (the asyncio-streams handler) a
client that closed before sending (a load balancer's TCP health check, #1199) left the
server's end in CLOSE_WAIT for good: its FIN reached the stream reader before the HTTP
protocol took over, and nothing ever closed the socket. PR #1192 (arm the timer at once)
was not merged; #1332 (0.17.1) fed that EOF to the protocol; 0.17.2 reverted it (#1354)
and the whole streams handler (#1355), back to a protocol that closes on EOF.

Real uvicorn children (uvloop + httptools, as with gunicorn's UvicornWorker): the installed
release and 0.15.0 (#1199's, from ``RELEASES``; not measured when absent). The server is
paused (SIGSTOP) while the closers connect and close, so their FINs arrive before its
event loop runs, as under load. The fix shown working: the upgrade.
"""

from __future__ import annotations

from pathlib import Path

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.judges.servers import SilentClients, UvicornRun
from tcplab.measure import state_of, stays

S = TcpState
KEEPALIVE, WINDOW, CLOSERS = 1, 3.0, 4
STACK = ("--loop", "uvloop", "--http", "httptools", "--timeout-keep-alive", str(KEEPALIVE))
scenario = Scenario(
    id="rw-uvicorn", title="uvicorn: a client that sends nothing, one that closes at once",
    claims=("L04",), tags=("realworld",), timeout=60.0,
    requires=("python:uvicorn", "python:uvloop", "python:httptools"),
)


async def measure(lab: Lab, release: Path | None) -> UvicornRun:
    async with servers.uvicorn(lab, *STACK, release=release) as server:
        silent = await servers.dial(lab, server, "silent")
        silent_held = await stays(silent.server, S.ESTABLISHED, up_to=WINDOW)
        with servers.paused(server):
            closers = [await servers.dial(lab, server, f"closer{i}") for i in range(CLOSERS)]
            for conn in closers:
                await conn.client.close()
        cw_held = await stays(closers[0].server, S.CLOSE_WAIT, up_to=WINDOW)
        ends = [conn.server.observe() for conn in closers]
        first, kept = ends[0], silent.server.observe()
        return UvicornRun(
            server.version, "uvloop/httptools", KEEPALIVE, WINDOW, silent_held,
            state_of(kept), servers.owner(kept, server.pids()), CLOSERS,
            sum(state_of(e) == "CLOSE_WAIT" for e in ends), cw_held,
            servers.owner(first, server.pids()), state_of(closers[0].client.observe()))


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    current = await measure(lab, None)
    old_release = servers.release("uvicorn", "0.15.0")
    old = None if old_release is None else await measure(lab, old_release)
    verdicts.judge("L04", SilentClients(current, old))


if __name__ == "__main__":
    scenario.main()

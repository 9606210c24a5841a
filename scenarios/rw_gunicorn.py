"""gunicorn's sync and gthread workers behind clients that hold connections (claim L05;
gunicorn #2707, #2781).

The sync worker (the default) serves one connection at a time and reads it with no timeout
of its own: a client that connects and sends nothing (an idle keep-alive connection of a
proxy, a stalled client) holds it until the arbiter replaces it after ``--timeout``. The
clients queued behind it that give up meanwhile leave their server ends in CLOSE_WAIT in
the listen queue, where no process holds them (#2707, "a lot of CLOSE_WAIT"). The gthread
worker keeps serving, and closes a client that never sends a request: #2781 asked for this,
21.0.0 did it, 21.2.0 reverted it, and since 25.2.0 a thread waits 5 s for a first request,
then parks the connection under the keep-alive timeout. The fix shown: ``-k gthread``.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.expect import eventually
from tcplab.judges.servers import GunicornRun, HeldConnections
from tcplab.measure import stays

S = TcpState
TIMEOUT, KEEPALIVE, CLOSERS, WINDOW = 3, 1, 3, 10.0
REQUEST = b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n"
scenario = Scenario(
    id="rw-gunicorn", title="gunicorn sync vs gthread: a silent client, clients giving up",
    claims=("L05",), tags=("realworld",), requires=("python:gunicorn",), timeout=90.0,
)


async def measure(lab: Lab, worker: str) -> GunicornRun:
    threads = ("--threads", "2") if worker == "gthread" else ()  # sync + threads is gthread
    options = ("-k", worker, *threads, "--timeout", str(TIMEOUT), "--keep-alive", str(KEEPALIVE))
    async with servers.gunicorn(lab, *options) as server:
        workers = server.pids() - {server.child.pid}
        silent = await servers.dial(lab, server, "silent")
        await eventually(lambda: servers.owner(silent.server.observe(), workers), what="accept")
        started = lab.clock()
        closers = [await servers.dial(lab, server, f"closer{i}") for i in range(CLOSERS)]
        for conn in closers:
            await conn.client.send(REQUEST)
            await conn.client.close()  # gave up waiting for the answer
        ends = [conn.server.observe() for conn in closers]
        cw_held = await stays(closers[0].server, S.CLOSE_WAIT, up_to=WINDOW)
        rest = await stays(silent.server, S.ESTABLISHED, up_to=max(0.0, WINDOW - cw_held))
        silent_held = lab.clock() - started if rest else cw_held
        return GunicornRun(
            server.version, worker, TIMEOUT, KEEPALIVE, CLOSERS,
            sum(e is not None and e.state is S.CLOSE_WAIT for e in ends),
            servers.owner(ends[0], server.pids()), cw_held, silent_held, WINDOW,
            not workers <= server.pids())


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    sync = await measure(lab, "sync")
    gthread = await measure(lab, "gthread")
    verdicts.judge("L05", HeldConnections(sync, gthread))


if __name__ == "__main__":
    scenario.main()

"""uvicorn and a client that sends nothing (claim L04; uvicorn PR #1192, #1199).

uvicorn arms its keep-alive timer when a response completes (``on_response_complete`` in
``protocols/http/{httptools,h11}_impl.py``) and nowhere else, so no timer ever runs for a
connection that has not sent a request: the server keeps it as long as the client does.
PR #1192 (arm the timer when the connection is made) was closed without being merged.

The installed uvicorn in a child process, once per HTTP implementation (httptools, h11),
keep-alive 1 s: a silent client, watched 3 s; then a served client idle after its response,
whose close by the keep-alive timer is timed (the timer works, once armed).
There is no fix in uvicorn to show; a proxy in front that times out idle clients is one.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.judges.servers import SilentClients, SilentRun
from tcplab.measure import owner, state_of, stays, takes

S = TcpState
KEEPALIVE, WINDOW = 1, 3.0
REQUEST = b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n"
scenario = Scenario(
    id="rw-uvicorn", title="uvicorn: a client that connects and never sends a request",
    claims=("L04",), tags=("realworld",), timeout=60.0,
    requires=("python:uvicorn", "python:uvloop", "python:httptools", "python:h11"),
)


async def measure(lab: Lab, http: str) -> SilentRun:
    options = ("--loop", "uvloop", "--http", http, "--timeout-keep-alive", str(KEEPALIVE))
    async with servers.uvicorn(lab, *options) as server:
        silent = await servers.dial(lab, server, "silent")
        silent_held = await stays(silent.server, S.ESTABLISHED, up_to=WINDOW)
        kept = silent.server.observe()
        served = await servers.dial(lab, server, "served")
        await served.client.send(REQUEST)
        await served.client.recv()  # the response: now the keep-alive timer is armed
        closed = await takes(lambda: state_of(served.client.observe()) == "CLOSE_WAIT",
                             up_to=WINDOW)
        return SilentRun(server.version, http, KEEPALIVE, WINDOW, silent_held, state_of(kept),
                         owner(kept, server.pids()), closed)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    runs = (await measure(lab, "httptools"), await measure(lab, "h11"))
    verdicts.judge("L04", SilentClients(runs))


if __name__ == "__main__":
    scenario.main()

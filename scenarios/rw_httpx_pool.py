"""httpx's pool (httpcore) keeps a connection the server closed in CLOSE_WAIT until the next
request to that origin discards it (claim L08).

Reported in httpcore #110 (a client doesn't handle a socket in CLOSE_WAIT, the other side
having closed the connection) and httpx #1315 (connections left active in the pool until
its limit is hit); C21 (http-pool-close-wait) already shows streamed responses that are
never closed. Here the responses are read and closed, as they should be, and the pooled,
idle connections are what the server's keep-alive timeout closes.

A sync ``httpx.Client`` with max_keepalive_connections=3 holds five streamed responses
open at once, then reads and closes them all: httpcore keeps three idle connections and
closes two. The server (the standard library's ThreadingHTTPServer in a child process)
closes idle connections after 1 s; the client's ends are watched in CLOSE_WAIT over a 1 s
idle window (httpcore reads nothing from an idle connection, so nothing notices the FIN),
held by this process's fds. The fixes, in the same run: one more request (httpcore sees the
idle socket readable on checkout, closes it and connects anew, and the request succeeds)
and ``Client.close()``. httpx runs in a worker thread (``_rw_http``).
"""

from __future__ import annotations

from importlib.metadata import version

import httpx
import trio

from _rw_http import idle_pool, start_server
from tcplab import Lab, Scenario, Verdicts

POOL, OPENED, KEEPALIVE, WINDOW = 3, 5, 1.0, 1.0
scenario = Scenario(
    id="rw-httpx-pool",
    title="httpx/httpcore pool: an idle connection the server closed stays CLOSE_WAIT",
    claims=("L08",),
    requires=("python:httpx", "python:httpcore"),
    tags=("realworld",),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    server = await start_server(lab, "http", KEEPALIVE, 100)
    client = httpx.Client(limits=httpx.Limits(max_keepalive_connections=POOL))

    def burst(n: int) -> None:  # n requests open at once, then each read and closed
        responses = [client.send(client.build_request("GET", server.url), stream=True)
                     for _ in range(n)]
        for response in responses:
            response.read()
            response.close()

    def one() -> bool:
        return client.get(server.url).is_success

    try:
        verdicts.judge("L08", await idle_pool(
            lab, server, library=f"httpx {version('httpx')} / httpcore {version('httpcore')}",
            pool_size=POOL, opened=OPENED, keepalive=KEEPALIVE, window=WINDOW,
            burst=burst, one=one, close=client.close))
    finally:
        await trio.to_thread.run_sync(client.close)


if __name__ == "__main__":
    scenario.main()

"""urllib3's pool (through a requests Session) keeps connections the server closed in
CLOSE_WAIT until reused or closed (claim L01).

Reported in urllib3 #2100 (requests/elasticsearch pools with pool_maxsize=20 pile up
CLOSE_WAIT sockets; the maintainers answer that pooled sockets wait there until reused,
bounded by the pool size), #1301 (connections are never removed from the pool) and #3189
(``resp.close()`` leaves the connection ESTABLISHED in the pool, by design).

A requests Session on an HTTPAdapter with pool_maxsize=3 holds five streamed responses
open at once, then reads and closes them all: urllib3 keeps three connections and discards
two. The server, the standard library's ThreadingHTTPServer in a child process, closes
idle keep-alive connections after 1 s; the client's ends are watched in CLOSE_WAIT over a
1 s idle window (nothing in urllib3 polls them: the state holds because nobody reads),
with the fds of this process holding them. The fixes, in the same run: one more request
(urllib3's ``is_connection_dropped`` check on checkout discards the one it took and
connects anew: the others stay) and ``Session.close()`` (the pool closes them all). requests runs in a worker
thread (``_rw_pool``).
"""

from __future__ import annotations

from importlib.metadata import version

from _rw_pool import idle_pool
from tcplab import Lab, Scenario, Verdicts

POOL, OPENED, KEEPALIVE, WINDOW = 3, 5, 1.0, 1.0
scenario = Scenario(
    id="rw-urllib3-pool",
    title="urllib3/requests pool: idle connections the server closed stay CLOSE_WAIT",
    claims=("L01",), requires=("python:urllib3", "python:requests"), tags=("realworld",))


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    import requests  # optional (tcplab[realworld]): imported where it runs
    from requests.adapters import HTTPAdapter

    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=POOL))

        def burst(url: str, n: int) -> None:  # n requests open at once, then each read and closed
            responses = [session.get(url, stream=True, timeout=10) for _ in range(n)]
            for response in responses:
                response.content  # noqa: B018 (read to the end: the connection goes back)
                response.close()

        verdicts.judge("L01", await idle_pool(
            lab, library=f"requests {version('requests')} / urllib3 {version('urllib3')}",
            pool_size=POOL, opened=OPENED, keepalive=KEEPALIVE, window=WINDOW, burst=burst,
            one=lambda url: session.get(url, timeout=10).ok, close=session.close))


if __name__ == "__main__":
    scenario.main()

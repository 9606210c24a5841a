"""requests ``stream=True`` responses never read nor closed keep their connections out of the
pool; with pool_block=True the next request waits (claim L02).

Reported in requests #3461 (pool_block=True, pool_maxsize=3: streamed requests hang after
the third, ``close()`` on an unread response closed its connection without giving it back;
requests 2.11.0 gives it back, PR #3462) and urllib3 #659 (a socket timeout while reading
a streamed body left the response open, so its connection never went back and a blocking
pool ran dry). requests 2.10 does not import on Python 3.10+: no old release is run.
Here a Session (pool_maxsize=2, pool_block=True) reads only the headers of two 30 kB
responses; a third request waits, watched over 1 s.
The ``http`` script server closes idle connections after 1 s: the unreleased ones go
CLOSE_WAIT, the unread body in Recv-Q, held by our fds. The fix: closing one response lets
the waiter through. However the run ends, no thread is left waiting on the pool."""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import TYPE_CHECKING

import trio

from tcplab import Lab, Scenario, TcpState, Verdicts, servers
from tcplab.expect import within
from tcplab.judges.clients import StreamedUnreleased
from tcplab.measure import count_in, owner, stays, takes

if TYPE_CHECKING:  # optional (tcplab[realworld]): imported where it runs
    import requests

CW = TcpState.CLOSE_WAIT
POOL, KEEPALIVE, WINDOW, BODY = 2, 1.0, 1.0, 30_000
scenario = Scenario(
    id="rw-requests-stream",
    title="requests stream=True, never read nor closed: pool_block=True hangs, CLOSE_WAIT",
    claims=("L02",), requires=("python:requests", "python:urllib3"), tags=("realworld",))


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    import requests
    from requests.adapters import HTTPAdapter

    adapter, done = HTTPAdapter(pool_connections=1, pool_maxsize=POOL, pool_block=True), trio.Event()
    with requests.Session() as session:
        session.mount("http://", adapter)
        async with (servers.script(lab, "http", KEEPALIVE, BODY) as server,
                    trio.open_nursery() as nursery):
            responses = await trio.to_thread.run_sync(
                lambda: [session.get(server.url, stream=True, timeout=10) for _ in range(POOL)])
            ends = [c.client for c in servers.watch_all(lab, server, TcpState.ESTABLISHED, CW)]
            nursery.start_soon(_request, session, server.url, done)  # it needs a free connection
            try:
                waited = await takes(done.is_set, up_to=WINDOW)
                await within(lambda: count_in(ends, CW) == POOL, timeout=KEEPALIVE + 5)
                close_wait, records = count_in(ends, CW), [end.observe() for end in ends]
                holders = sum(owner(record, {os.getpid()}) is not None for record in records)
                held_s = await stays(ends, CW, up_to=WINDOW)
                responses[0].close()  # the fix: close (or read) the response
                unblocked = await takes(done.is_set, up_to=2.0)
            finally:
                for response in responses:
                    response.close()
                if not done.is_set():  # a free slot: the waiter connects and returns
                    queue = adapter.poolmanager.connection_from_url(server.url).pool
                    queue.put(None)  # type: ignore[union-attr]
            await within(lambda: count_in(ends, CW) == 0, timeout=2.0)
            after_close = count_in(ends, CW)
    verdicts.judge("L02", StreamedUnreleased(
        f"requests {version('requests')} / urllib3 {version('urllib3')}", POOL, POOL,
        waited is not None, WINDOW if waited is None else waited, WINDOW, close_wait, holders,
        tuple(r.recv_q for r in records if r is not None), held_s, WINDOW,
        unblocked, after_close))


async def _request(session: requests.Session, url: str, done: trio.Event) -> None:
    await trio.to_thread.run_sync(lambda: session.get(url, timeout=10).content)
    done.set()


if __name__ == "__main__":
    scenario.main()

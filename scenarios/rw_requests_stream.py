"""requests ``stream=True`` responses never read nor closed keep their connections out of the
pool; with pool_block=True the next request waits (claim L02).

Reported in requests #3461 (with pool_block=True and pool_maxsize=3 a loop of streamed
requests hangs after the third; at the time ``close()`` on a partly read response did not
give the connection back, fixed by PR #3462) and urllib3 #659 (a streamed response that
fails mid-read never returns its connection, and a blocking pool runs dry).

A requests Session (pool_maxsize=2, pool_block=True) fetches two 30 kB responses with
stream=True and reads only their headers. A third request, in its own worker thread, is
watched waiting for a connection over a 1 s window (urllib3 waits on its pool's queue with
no timeout: a hang, held by the unreleased responses alone). The server, the standard
library's ThreadingHTTPServer in a child process, closes the idle connections after 1 s:
the unreleased ones go CLOSE_WAIT with the unread body in Recv-Q, held by this process's
fds, watched over a 1 s window. The fix: closing one response lets the waiting request
through; closing both closes their sockets. Should the waiter still be stuck at the end (or the
run fail), a free slot is put in the pool's queue so no thread outlives the run.
"""

from __future__ import annotations

import os
from importlib.metadata import version

import requests
import trio
from requests.adapters import HTTPAdapter

from _rw_http import client_ends, count, held, look, owned, start_server
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import within
from tcplab.judges.clients import StreamedUnreleased

POOL, KEEPALIVE, WINDOW, BODY = 2, 1.0, 1.0, 30_000
scenario = Scenario(
    id="rw-requests-stream",
    title="requests stream=True, never read nor closed: pool_block=True hangs, CLOSE_WAIT",
    claims=("L02",), requires=("python:requests", "python:urllib3"), tags=("realworld",))


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    server = await start_server(lab, "http", KEEPALIVE, BODY)
    session, done = requests.Session(), trio.Event()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL, pool_block=True)
    session.mount("http://", adapter)
    try:
        responses = await trio.to_thread.run_sync(
            lambda: [session.get(server.url, stream=True, timeout=10) for _ in range(POOL)])
        ends = client_ends(lab, server.port)

        async def waiter() -> None:  # the next request: it needs a connection from the pool
            await trio.to_thread.run_sync(lambda: session.get(server.url, timeout=10).content)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            try:
                waited = await held(lambda: not done.is_set(), WINDOW)
                await within(lambda: count(lab, ends, TcpState.CLOSE_WAIT) == POOL,
                             timeout=KEEPALIVE + 5)
                close_wait, records = count(lab, ends, TcpState.CLOSE_WAIT), look(lab, ends)
                holders = owned(records, os.getpid())
                held_s = await held(
                    lambda: count(lab, ends, TcpState.CLOSE_WAIT) == close_wait, WINDOW)
                started = trio.current_time()
                responses[0].close()  # the fix: close (or read) the response
                unblocked = await within(
                    lambda: (done.is_set() and trio.current_time() - started) or None, timeout=2.0)
            finally:  # however this ends, no thread is left waiting on the pool
                for response in responses:
                    response.close()
                if not done.is_set():
                    queue = adapter.poolmanager.connection_from_url(server.url).pool
                    assert queue is not None
                    queue.put(None)  # a free slot: the waiter connects and returns
        await within(lambda: count(lab, ends, TcpState.CLOSE_WAIT) == 0, timeout=2.0)
    finally:
        session.close()
    verdicts.judge("L02", StreamedUnreleased(
        f"requests {version('requests')} / urllib3 {version('urllib3')}", POOL, POOL,
        waited < WINDOW, waited, WINDOW, close_wait, holders,
        tuple(r.recv_q for r in records if r is not None), held_s, WINDOW,
        unblocked, count(lab, ends, TcpState.CLOSE_WAIT)))


if __name__ == "__main__":
    scenario.main()

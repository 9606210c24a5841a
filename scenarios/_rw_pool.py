"""The experiment L01 (urllib3) and L08 (httpx) share: a client pool's idle keep-alive
connections after the server's keep-alive timeout closed them.

The server is ``tcplab.servers.script``'s ``http`` kind (the standard library's
ThreadingHTTPServer) in a child process, so the two ends of a connection have different
owners, as in production. The sync client runs in a worker thread
(``trio.to_thread.run_sync``), so the scenario's trio loop keeps observing the kernel while
the library blocks; the thread ends with its call.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import trio

from tcplab import Lab, TcpState, servers
from tcplab.expect import within
from tcplab.judges.clients import IdlePool
from tcplab.measure import count_in, owner, state_of, stays

S = TcpState


async def idle_pool(lab: Lab, *, library: str, pool_size: int, opened: int, keepalive: float,
                    window: float, burst: Callable[[str, int], None],
                    one: Callable[[str], bool], close: Callable[[], None]) -> IdlePool:
    """The client's three calls: ``burst(url, n)`` holds ``n`` requests open at once, then
    reads and closes them all (back to the pool); ``one(url)`` is one more request (True:
    it succeeded); ``close()`` closes the pool (also if the run fails)."""
    async with servers.script(lab, "http", keepalive, 100) as server:
        try:
            await trio.to_thread.run_sync(burst, server.url, opened)
            kept = servers.watch_all(lab, server, S.ESTABLISHED, S.CLOSE_WAIT)  # the rest: closed
            ends = [conn.client for conn in kept]
            await within(lambda: count_in(ends, S.CLOSE_WAIT) == len(ends) > 0,
                         timeout=keepalive + 5)
            close_wait = count_in(ends, S.CLOSE_WAIT)
            holders = sum(owner(end.observe(), {os.getpid()}) is not None for end in ends)
            held_s = await stays(ends, S.CLOSE_WAIT, up_to=window)
            server_ends = tuple(state_of(conn.server.observe()) for conn in kept)
            reuse_ok = await trio.to_thread.run_sync(one, server.url)
            await within(lambda: count_in(ends, S.CLOSE_WAIT) < close_wait, timeout=1.0)
            after_reuse = count_in(ends, S.CLOSE_WAIT)
        finally:
            await trio.to_thread.run_sync(close)
        await within(lambda: count_in(ends, S.CLOSE_WAIT) == 0, timeout=2.0)
        return IdlePool(library, pool_size, opened, keepalive, close_wait, holders, server_ends,
                        held_s, window, reuse_ok, after_reuse, count_in(ends, S.CLOSE_WAIT))

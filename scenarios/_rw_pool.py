"""A client pool's idle connections after the server closed them, the experiments the
realworld scenarios share: ``idle_pool`` for HTTP keep-alive pools (L01 urllib3, L08 httpx),
``server_closed`` for database and cache pools (L06 redis-py, L09 psycopg_pool).

HTTP: the server is ``tcplab.servers.script``'s ``http`` kind (the standard library's
ThreadingHTTPServer) in a child process, so the two ends of a connection have different
owners, as in production. The sync client runs in a worker thread
(``trio.to_thread.run_sync``), so the scenario's trio loop keeps observing the kernel while
the library blocks; the thread ends with its call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from tcplab import Lab, TcpState, servers
from tcplab.expect import within
from tcplab.judges.clients import IdlePool
from tcplab.kernel.model import SocketRecord
from tcplab.lab import End
from tcplab.measure import count_in, owner, state_of, stays

S = TcpState
C = TypeVar("C")


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


@dataclass(frozen=True)
class ServerClosed:
    """A pool's idle connections once the server closed them: how many client ends went
    CLOSE_WAIT, the first one's record, how long it stayed there, which process holds it,
    and its server end's state (the client ends, to follow them further)."""

    ends: tuple[End, ...]
    close_wait: int
    first: SocketRecord | None
    held_s: float
    holder: str | None
    server_state: str | None


async def server_closed(lab: Lab, server: servers.Server, burst: Sequence[C],
                        fd: Callable[[C], int], release: Callable[[C], object], *,
                        timeout: float, window: float) -> ServerClosed:
    """``burst``: connections the pool handed out at once (``fd``: each one's descriptor);
    ``release`` gives each back, to idle in the pool until the server closes them (within
    ``timeout``); the first is then watched in CLOSE_WAIT over ``window`` seconds."""
    pooled = [servers.watch(lab, fd(conn), server, f"pooled{i}") for i, conn in enumerate(burst)]
    for conn in burst:
        release(conn)
    ends = tuple(conn.client for conn in pooled)
    await within(lambda: count_in(ends, S.CLOSE_WAIT) == len(ends), timeout=timeout)
    close_wait = count_in(ends, S.CLOSE_WAIT)
    held_s = await stays(ends[0], S.CLOSE_WAIT, up_to=window)
    first, its_server = ends[0].observe(), pooled[0].server.observe()
    return ServerClosed(ends, close_wait, first, held_s, owner(first, {os.getpid()}),
                        state_of(its_server))

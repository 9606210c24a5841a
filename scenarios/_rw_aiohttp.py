"""aiohttp's client as sync code that embeds it drives it (``rw_aiohttp``, claim L07): its
own event loop, run from worker threads with ``run_until_complete``, so the scenario's trio
loop keeps observing the kernel meanwhile, and between two calls the client's loop does not
run at all (nothing reads its sockets). Each call ends with the coroutine it runs; ``idle``
runs the loop with nothing to do until its block ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import trio

T = TypeVar("T")


class Embedded:
    """One ``ClientSession`` never closed by the application (``get``), and a websocket in a
    session of its own (``ws_open``, ``ws_closing``); ``async with`` closes what is left."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.session = self.loop.run_until_complete(_session())
        self.ws: tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientSession] | None = None

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """The loop runs ``coro`` to its end, in a worker thread."""
        return await trio.to_thread.run_sync(self.loop.run_until_complete, coro)

    @asynccontextmanager
    async def idle(self) -> AsyncIterator[None]:
        """The loop runs, with nothing to do, while the block runs."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, self.loop.run_forever)
            try:
                yield
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)

    async def get(self, url: str, *, close: bool = False) -> None:
        """One GET, read to the end; ``close``: then ``session.close()`` in the same run."""
        await self.run(_get(self.session, url, close))

    async def ws_open(self, url: str) -> None:
        """A websocket in a new session, one message each way; left open."""
        self.ws = await self.run(_ws_open(url))

    @asynccontextmanager
    async def ws_closing(self) -> AsyncIterator[None]:
        """The client closes the websocket and its session while the block runs."""
        async with trio.open_nursery() as nursery:
            if self.ws is not None:
                nursery.start_soon(self.run, _close(*self.ws))
                self.ws = None
            yield

    async def __aenter__(self) -> Embedded:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        with trio.CancelScope(shield=True):
            await self.run(_close(self.session, *(self.ws or ())))
        self.loop.close()


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()  # made in the loop it will run in


async def _get(session: aiohttp.ClientSession, url: str, close: bool) -> None:
    async with session.get(url) as response:
        await response.read()
    if close:
        await session.close()


async def _ws_open(url: str) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientSession]:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(url)
    await ws.send_str("hello")
    await ws.receive()
    return ws, session


async def _close(*closing: aiohttp.ClientWebSocketResponse | aiohttp.ClientSession) -> None:
    for each in closing:
        await each.close()

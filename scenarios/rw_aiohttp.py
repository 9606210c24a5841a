"""aiohttp: a ClientSession never closed keeps its connections open while its event loop is
not running (CLOSE_WAIT once the server closes them); the server's end of a websocket after
the client's close (claim L07).

Reported in aiohttp #1115 (closing a transport takes one more turn of the loop: a loop
stopped right after leaves it open, "by design"), #3736 (``BaseConnector.close()`` did not
wait for its connections to close) and #4805 (the server's end of a websocket sits in
CLOSE_WAIT for about 10 s after the client's ``ws.close()``).

The server is ``aiohttp.web`` in a child process (keep-alive timeout 1 s, websocket close
timeout 2 s). The client's asyncio loop is driven from worker threads with
``run_until_complete``, as sync code embedding aiohttp does: between calls the loop is not
running. One GET through a session that is never closed; the server's keep-alive timeout
closes the connection and the client's end is watched in CLOSE_WAIT over a 1 s window, held
by this process's fd (the loop is what would read the EOF, and it is not running). Then the
loop runs again (idle): the transport reads the EOF and closes that end. The fix: a GET and
``session.close()`` in the same run of the loop (``async with``). Last, a websocket round
trip and the client's close; the server's end is followed for 3 s.
"""

from __future__ import annotations

import asyncio
import os
import threading
from importlib.metadata import version

import aiohttp
import trio

from _rw_http import client_ends, count, held, owned, path_over, start_server, state_of, tuples
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import eventually, within
from tcplab.judges.clients import AiohttpLeak
from tcplab.kernel.model import Address, FourTuple

KEEPALIVE, WINDOW, WS_TIMEOUT = 1.0, 1.0, 2.0
scenario = Scenario(
    id="rw-aiohttp", title="aiohttp: an unclosed ClientSession's CLOSE_WAIT; a websocket's server end",
    claims=("L07",), requires=("python:aiohttp",), tags=("realworld",), timeout=60.0)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    server = await start_server(lab, "aiohttp", KEEPALIVE, WS_TIMEOUT)
    loop, release, go = asyncio.new_event_loop(), threading.Event(), threading.Event()
    ws_end: list[FourTuple] = []  # the server's end of the websocket connection
    session = loop.run_until_complete(_new_session())

    async def get(close: bool = False) -> None:
        async with session.get(server.url) as response:
            await response.read()
        if close:
            await session.close()

    async def idle() -> None:  # the loop runs, the application does nothing
        while not release.is_set():
            await asyncio.sleep(0.01)

    async def ws_round() -> None:  # one message, then the client's close (on ``go``)
        async with aiohttp.ClientSession() as ws_session, ws_session.ws_connect(server.url + "ws") as ws:
            await ws.send_str("hello")
            await ws.receive()
            ws_end.append(FourTuple(Address.of(ws.get_extra_info("peername")),
                                     Address.of(ws.get_extra_info("sockname"))))
            while not go.is_set():
                await asyncio.sleep(0.01)

    try:
        await trio.to_thread.run_sync(loop.run_until_complete, get())
        ends = client_ends(lab, server.port)
        await within(lambda: count(lab, ends, TcpState.CLOSE_WAIT) == 1, timeout=KEEPALIVE + 5)
        stopped_state, holders = state_of(lab, ends[0]), owned([lab.observer.lookup(ends[0])], os.getpid())
        stopped_held = await held(lambda: state_of(lab, ends[0]) == stopped_state == "CLOSE_WAIT", WINDOW)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, loop.run_until_complete, idle())
            try:
                await within(lambda: state_of(lab, ends[0]) != "CLOSE_WAIT", timeout=2.0)
                running_state = state_of(lab, ends[0])
            finally:
                release.set()  # the loop's idle task ends, and with it the thread
        before = tuples(lab, server.port, client=True)
        await trio.to_thread.run_sync(loop.run_until_complete, get(True))  # the fix
        closed_state = state_of(lab, next(iter(tuples(lab, server.port, client=True) - before)))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, loop.run_until_complete, ws_round())
            try:
                await eventually(lambda: ws_end, what="the websocket to connect")
            finally:
                go.set()  # the client closes now, while the server's end is followed
            ws_path, ws_times = await path_over(lab, ws_end[0], WS_TIMEOUT * 1.5)
    finally:
        release.set()
        go.set()
        await trio.to_thread.run_sync(loop.run_until_complete, session.close())
        loop.close()
    verdicts.judge("L07", AiohttpLeak(
        f"aiohttp {version('aiohttp')} (server {server.info[0]})", KEEPALIVE, WINDOW,
        stopped_state, holders == 1, stopped_held, running_state, closed_state, ws_path,
        ws_times.get("CLOSE_WAIT"), WS_TIMEOUT))


async def _new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()  # made in the loop it will run in


if __name__ == "__main__":
    scenario.main()

"""The user-facing lab under any framework (issue 12, item 3): ``Lab``, its ends' actions,
``tcplab.expect``, ``tcplab.measure`` and ``Lab.adopt`` under asyncio (plain, and through
anyio on either backend) as well as trio, on real loopback sockets.

These tests are sync functions that start their own event loop (``asyncio.run``,
``anyio.run``): the suite runs in trio mode, which would claim any ``async def`` test. How
the fixtures meet each pytest plugin is in ``test_anyframe_plugins.py``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import anyio.abc
import pytest
import trio

from tcplab import Lab, TcpState
from tcplab.expect import ExpectationFailed, eventually, gone, holds, path_seen, reaches, within
from tcplab.lab import AdoptableSocket, End, LabError
from tcplab.measure import leaves, path_of, state_of, stays

S = TcpState


async def _close_both_ways(lab: Lab) -> None:
    """A connection of the lab's own, driven through its whole close: the client closes, the
    server sees CLOSE_WAIT, closes too; TIME_WAIT on the client, nothing on the server."""
    conn = await lab.connect()
    await conn.client.send(b"ping")
    assert await conn.server.recv(4) == b"ping"
    await conn.client.close()
    await reaches(conn.server, S.CLOSE_WAIT)
    await holds(conn.server, S.CLOSE_WAIT, for_=0.05, mark=True)
    assert await conn.server.read_eof() == b""
    assert await stays(conn.server, S.CLOSE_WAIT, up_to=0.02) > 0
    await conn.server.close()
    assert state_of(await leaves(conn.client, S.FIN_WAIT2, S.ESTABLISHED)) == "TIME_WAIT"
    await gone(conn.server)
    path_seen(conn.server, S.ESTABLISHED, S.CLOSE_WAIT, None)
    assert path_of(conn, "server")[-1] is None
    assert await within(lambda: conn.client.observe_all(), timeout=1.0) is not None
    assert await eventually(lambda: conn.server.observe() is None, what="nothing") is True


def test_the_lab_and_expectations_under_asyncio() -> None:
    async def main() -> None:
        async with Lab() as lab:
            await _close_both_ways(lab)
            listener = await lab.listen()
            client = await lab.start_connect(listener)
            await client.connected()
            await listener.accept()

    asyncio.run(main())


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_lab_and_expectations_through_anyio(backend: str) -> None:
    async def main() -> None:
        async with Lab() as lab:
            await _close_both_ways(lab)

    anyio.run(main, backend=backend)


def test_a_failed_expectation_under_asyncio_shows_both_ends() -> None:
    async def main() -> None:
        async with Lab() as lab:
            conn = await lab.connect()
            with pytest.raises(ExpectationFailed, match=r"expected TIME_WAIT within 0\.1 s") as info:
                await reaches(conn.server, S.TIME_WAIT, timeout=0.1)
            assert "timeline (both ends)" in str(info.value)
            assert "client" in str(info.value) and "server" in str(info.value)

    asyncio.run(main())


def test_spawn_says_it_needs_trio() -> None:
    async def main() -> None:
        async with Lab() as lab:
            with pytest.raises(LabError, match="needs trio"):
                await lab.spawn([sys.executable, "-c", "pass"])

    asyncio.run(main())


def test_close_without_a_loop_reaps_children_and_closes_sockets() -> None:
    """``Lab.close`` (the fixture's teardown) after the trio run that spawned a child ended."""
    lab = Lab()

    async def main() -> tuple[int, socket.socket]:
        child = await lab.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
        listener = await lab.listen()
        return child.pid, listener.sock

    pid, sock = trio.run(main)
    lab.close()
    assert sock.fileno() == -1
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)  # already reaped by the lab


async def _observe_close(client: End, server: End, close_client: Callable[[], Awaitable[None]],
                         close_server: Callable[[], Awaitable[None]]) -> None:
    """Adopted ends watched through the owner's own close: CLOSE_WAIT, then TIME_WAIT."""
    await close_client()
    await reaches(server, S.CLOSE_WAIT)
    await reaches(client, S.FIN_WAIT2)
    await close_server()
    await reaches(client, S.TIME_WAIT)
    await gone(server)


def test_adopting_asyncio_stream_writers_and_transports() -> None:
    async def main() -> None:
        accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await accepted.put(writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        lab = Lab()
        try:
            for kind in ("writer", "transport", "extra-info"):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                served = await accepted.get()
                given: tuple[AdoptableSocket, AdoptableSocket] = {
                    "writer": (writer, served),
                    "transport": (writer.transport, served.transport),
                    "extra-info": (writer.get_extra_info("socket"),
                                   served.get_extra_info("socket")),
                }[kind]
                conn = lab.adopt_connection(*given)
                assert conn.client.sock is writer.get_extra_info("socket")._sock  # no dup

                async def close(w: asyncio.StreamWriter) -> None:
                    w.close()
                    await w.wait_closed()

                await _observe_close(conn.client, conn.server,
                                     partial(close, writer), partial(close, served))
                assert conn.client.closed and conn.server.closed
        finally:
            lab.close()
            server.close()
            await server.wait_closed()

    asyncio.run(main())


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_adopting_anyio_socket_streams(backend: str) -> None:
    async def main() -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, await anyio.connect_tcp("127.0.0.1", port) as client:
            served = await listener.listeners[0].accept()  # type: ignore[attr-defined]
            async with Lab() as lab:
                conn = lab.adopt_connection(client, served)
                await _observe_close(conn.client, conn.server, client.aclose, served.aclose)

    anyio.run(main, backend=backend)


def test_adopting_something_without_a_socket_says_so() -> None:
    lab = Lab()
    try:
        with pytest.raises(LabError, match="cannot adopt"):
            lab.adopt(object())  # type: ignore[arg-type]
        with pytest.raises(LabError, match="not connected"):
            lab.adopt(socket.socket())
    finally:
        lab.close()

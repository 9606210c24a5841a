"""What the aiohttp scenarios share (``rw_aiohttp`` L07, ``rw_aiohttp_ws`` L11): a throwaway
TLS certificate, a websocket client of this process's aiohttp, and #8184's client.

The certificate: Python's ``ssl`` cannot make one, so the ``openssl`` command does (on
every Debian/Ubuntu machine: ``ca-certificates`` depends on it), self-signed for 127.0.0.1,
in a temporary directory removed when the block ends; the client does not verify it (the
claim is about closing, not trust).

The websocket client runs aiohttp's own client in its own event loop from worker threads
(``run_until_complete``), so the scenario's trio loop keeps observing the kernel meanwhile.
#8184's client is a raw socket of the lab: it opens a websocket, sends a close frame and
then waits for the server to close, as RFC 6455 asks of a client (aiohttp's client
closes its end itself).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from tcplab import Lab, servers
from tcplab.lab import Connection

if TYPE_CHECKING:  # optional (tcplab[realworld]): imported where it runs
    import aiohttp

UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: lab\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
#: a masked close frame, code 1000 (RFC 6455 5.5.1: a client masks what it sends)
CLOSE_FRAME = bytes([0x88, 0x82, 0, 0, 0, 0]) + (1000).to_bytes(2, "big")


@contextmanager
def certificate() -> Iterator[tuple[str, str]]:
    """``(cert, key)``: PEM files of a self-signed certificate for 127.0.0.1."""
    with tempfile.TemporaryDirectory(prefix="tcplab-cert-") as directory:
        cert, key = str(Path(directory, "cert.pem")), str(Path(directory, "key.pem"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        yield cert, key


@asynccontextmanager
async def websocket(url: str) -> AsyncIterator[trio.Event]:
    """A websocket of this process's aiohttp client to ``url``, one message each way; when
    the returned event is set, the client closes it (``ws.close()``) while the block goes
    on. Its session is closed when the block ends."""
    loop, closing = asyncio.new_event_loop(), trio.Event()
    session = loop.run_until_complete(_session())
    try:
        ws = await trio.to_thread.run_sync(loop.run_until_complete, _open(session, url))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_close_when, closing, loop, ws)
            yield closing
            closing.set()
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(loop.run_until_complete, session.close())
        loop.close()


async def waiting_client(lab: Lab, server: servers.Server) -> Connection:
    """#8184's client: a websocket opened, a close frame sent; it then only waits."""
    conn = await servers.dial(lab, server, "waiting")
    await conn.client.send(UPGRADE)
    assert (await conn.client.recv(4096)).startswith(b"HTTP/1.1 101"), "no websocket"
    await conn.client.send(CLOSE_FRAME)
    return conn


async def _session() -> aiohttp.ClientSession:
    import aiohttp

    return aiohttp.ClientSession()  # made in the loop it will run in


async def _open(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url)
    await ws.send_str("hello")
    await ws.receive()
    return ws


async def _close_when(closing: trio.Event, loop: asyncio.AbstractEventLoop,
                      ws: aiohttp.ClientWebSocketResponse) -> None:
    await closing.wait()
    await trio.to_thread.run_sync(loop.run_until_complete, ws.close())

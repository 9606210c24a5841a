"""A small keep-alive HTTP/1.1 server on trio and h11, with the bugs real servers have.

The HTTP leak scenarios need a real server speaking real HTTP/1.1 (h11 does the protocol;
nothing here parses bytes by hand) whose connection handling can be switched between
correct and buggy:

* ``keepalive_timeout``: how long an idle keep-alive connection is kept before the server
  closes it — the server is then the active closer (claims C21, C39).
* ``close_on_error=False``: the bug of claim C19 — when the client's side ends (end of
  file between requests) or breaks (a request cut short), the handler returns without
  closing the connection, which stays in the server's registry: CLOSE_WAIT.

Every accepted connection is kept in ``connections`` until closed, as servers keep them
for graceful shutdown or statistics; that registry is where a forgotten close leaks.
``aclose`` closes all of them, so a scenario ends clean even after leaking on purpose.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import trio

from tcplab.kernel.model import Address, FourTuple

MAX_RECV = 65536


@dataclass
class ServerLog:
    """What the server did with its connections, for evidence."""

    served: int = 0
    idle_closed: int = 0
    eof: int = 0
    errors: int = 0
    leaked: int = 0
    errors_seen: list[str] = field(default_factory=list)


def four_tuple_of(sock: trio.SocketStream | socket.socket | trio.socket.SocketType) -> FourTuple:
    """The four-tuple of a connected socket (or a trio stream's), from its own end."""
    if isinstance(sock, trio.SocketStream):
        sock = sock.socket
    return FourTuple.of(sock)


class HttpServer:
    """``async with trio.open_nursery() as n: await n.start(server.serve)`` -> its address."""

    def __init__(
        self,
        *,
        keepalive_timeout: float = 5.0,
        close_on_error: bool = True,
        body: bytes = b"hello from tcplab\n",
    ) -> None:
        self.keepalive_timeout = keepalive_timeout
        self.close_on_error = close_on_error
        self.body = body
        self.connections: dict[FourTuple, trio.SocketStream] = {}
        self.log = ServerLog()
        self.address: Address | None = None
        self._listener: trio.SocketListener | None = None

    @property
    def url(self) -> str:
        assert self.address is not None, "the server is not serving yet"
        return f"http://{self.address}/"

    async def serve(self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on an ephemeral loopback port and serve until cancelled."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self._listener = listeners[0]
        sock = self._listener.socket
        self.address = Address.of(sock.getsockname())
        task_status.started(self.address)
        # Not trio.serve_listeners: it closes each stream when its handler returns, which
        # is exactly the safety net whose absence makes the C19 bug (a server loop of the
        # thread-per-connection or asyncio kind, where returning closes nothing).
        async with trio.open_nursery() as nursery:
            while True:
                stream = await self._listener.accept()
                nursery.start_soon(self._handle, stream)

    async def aclose(self) -> None:
        """Close the listener and every connection still registered (leaked ones too)."""
        if self._listener is not None:
            await self._listener.aclose()
        for stream in list(self.connections.values()):
            await stream.aclose()
        self.connections.clear()

    # -- one connection ----------------------------------------------------------

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            key = four_tuple_of(stream)
        except OSError:  # reset before its handler ran: no peer, nothing to serve
            self.log.errors += 1
            self.log.errors_seen.append("reset before the handler started")
            await stream.aclose()
            return
        self.connections[key] = stream
        conn = h11.Connection(h11.SERVER)
        try:
            await self._serve_requests(stream, conn, key)
        except (h11.RemoteProtocolError, trio.BrokenResourceError) as exc:
            # The client broke the connection mid-request (or reset it).
            self.log.errors += 1
            self.log.errors_seen.append(f"{type(exc).__name__}: {exc}")
            await self._finish(stream, key)

    async def _serve_requests(self, stream: trio.SocketStream, conn: h11.Connection,
                              key: FourTuple) -> None:
        while True:
            event: h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA] | None = None
            with trio.move_on_after(self.keepalive_timeout):
                event = await _next_event(stream, conn)
            if event is None:  # idle for keepalive_timeout: the server closes first
                self.log.idle_closed += 1
                await self._close(stream, key)
                return
            if isinstance(event, h11.ConnectionClosed):  # end of file between requests
                self.log.eof += 1
                await self._finish(stream, key)
                return
            if not isinstance(event, h11.Request):
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
            while not isinstance(event, h11.EndOfMessage):  # read (and drop) the body
                event = await _next_event(stream, conn)
                if isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("the client closed in the middle of its request")
            await self._respond(stream, conn)
            self.log.served += 1
            if conn.our_state is h11.MUST_CLOSE:
                await self._close(stream, key)
                return
            conn.start_next_cycle()

    async def _respond(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        headers = [("content-type", "text/plain"), ("content-length", str(len(self.body)))]
        for event in (h11.Response(status_code=200, headers=headers), h11.Data(data=self.body),
                      h11.EndOfMessage()):
            data = conn.send(event)
            if data:
                await stream.send_all(data)

    async def _finish(self, stream: trio.SocketStream, key: FourTuple) -> None:
        """The end of a connection the client ended: closed, unless the server has the bug."""
        if self.close_on_error:
            await self._close(stream, key)
        else:
            self.log.leaked += 1  # the bug: return, the stream stays in the registry

    async def _close(self, stream: trio.SocketStream, key: FourTuple) -> None:
        self.connections.pop(key, None)
        await stream.aclose()


async def _next_event(
    stream: trio.SocketStream, conn: h11.Connection
) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
    """The next h11 event, receiving as much as it needs (b"" at end of file)."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(MAX_RECV))


@asynccontextmanager
async def running(server: HttpServer) -> AsyncIterator[HttpServer]:
    """Serve in a nursery of its own for the ``async with`` block; then stop and close it
    (connections it leaked included), however the block ends."""
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            yield server
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await server.aclose()


def socket_of(response: object) -> socket.socket | trio.socket.SocketType:
    """The socket under an httpx response (its connection's), via httpcore's network stream.

    This is what lets a scenario observe the pooled connection an httpx client holds.
    """
    extensions = getattr(response, "extensions", {})
    stream = extensions.get("network_stream")
    if stream is None:
        raise LookupError("the response has no network stream (HTTP/2, or already closed?)")
    sock: socket.socket | trio.socket.SocketType = stream.get_extra_info("socket")
    return sock


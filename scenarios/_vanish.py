"""A peer that vanishes, for the retry scenarios (K01-K04): the partition of
``tcplab.kernel.partition`` and what the scenarios read off it. Measures only: when each
segment left (captured on the veth), when the kernel gave up; the judges decide.

Every socket, capture and the far namespace belong to the ``Partition``: ``vanishing``
closes them however the body ends, and the kernel would anyway when the process exits.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from tcplab.expect import ExpectationFailed, within
from tcplab.kernel.model import FourTuple
from tcplab.kernel.packets import Segment, SegmentCapture, TcpFlags
from tcplab.kernel.partition import Partition
from tcplab.lab import errno_name


@asynccontextmanager
async def vanishing() -> AsyncIterator[Partition]:
    """The scenario's namespace joined by veth to a far one; removed when the block ends."""
    part = Partition().open()
    try:
        yield part
    finally:
        part.close()


class Wire:
    """What one side sent on its veth, kept in order as it is read."""

    def __init__(self, capture: SegmentCapture) -> None:
        self.capture = capture
        self.seen: list[Segment] = []

    def sent(self, port: int, match: Callable[[Segment], bool]) -> list[Segment]:
        """Segments from local ``port`` that ``match``, oldest first."""
        self.seen.extend(self.capture.read())
        return [s for s in self.seen if s.src.port == port and match(s)]

    async def first(self, port: int, match: Callable[[Segment], bool], *, timeout: float) -> Segment:
        """Wait for the first such segment (a precondition: the capture works)."""
        found = await within(lambda: self.sent(port, match), timeout=timeout)
        if not found:
            raise ExpectationFailed(f"no matching segment from port {port} in {timeout} s")
        return found[0]


def syn(s: Segment) -> bool:
    return TcpFlags.SYN in s.flags


def data(s: Segment) -> bool:
    return s.payload > 0


def fin(s: Segment) -> bool:
    return TcpFlags.FIN in s.flags


def after(segments: list[Segment], start: float) -> tuple[float, ...]:
    """Send times relative to ``start``."""
    return tuple(round(s.t - start, 4) for s in segments)


async def far_listener(part: Partition) -> socket.socket:
    """A listener in the far namespace, on an ephemeral port."""
    listener = part.socket(far=True)
    listener.bind((part.far_ip, 0))
    listener.listen(8)
    await trio.lowlevel.checkpoint()
    return listener


async def pair(part: Partition, listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """A near client connected to the far ``listener``, and the far server it accepted."""
    client = part.socket()
    await trio.socket.from_stdlib_socket(client).connect(listener.getsockname())
    await trio.lowlevel.wait_readable(listener)
    server, _ = listener.accept()
    part.owned.append(server)
    return client, server


async def failure(sock: socket.socket, *, up_to: float, connecting: bool = False
                  ) -> tuple[float | None, str | None]:
    """When (monotonic) and how the kernel failed ``sock``: a pending connect, or a recv that
    waits for data; (None, None) if it did not within ``up_to`` seconds."""
    with trio.move_on_after(up_to):
        if connecting:
            await trio.lowlevel.wait_writable(sock)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            return time.monotonic(), errno_name(error) if error else None
        try:
            await trio.socket.from_stdlib_socket(sock).recv(1)
        except OSError as exc:
            return time.monotonic(), errno_name(exc.errno or 0)
        return time.monotonic(), None
    return None, None


async def gone(present: Callable[[], object], *, up_to: float) -> float | None:
    """When (monotonic) ``present()`` first returned None (the kernel dropped the socket)."""
    return await within(lambda: time.monotonic() if present() is None else None, timeout=up_to)


def four_tuple(sock: socket.socket) -> FourTuple:
    return FourTuple.of(sock)

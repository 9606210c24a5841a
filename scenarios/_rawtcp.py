"""Seeing every TCP segment on loopback, with their flags and sequence numbers.

A ``SOCK_RAW``/``IPPROTO_TCP`` socket (root) receives a copy of every TCP segment delivered
in its network namespace (on loopback: every segment, once) alongside the kernel's own TCP,
which still handles it, and even when a socket filter then discards the segment. That is
what a scenario needs to read the kernel's answer to a segment, flag by flag. Use it only in
a private namespace: the copies are of *every* TCP segment there.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from types import TracebackType

from tcplab.expect import within as expect_within

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"))
_TCP = struct.Struct("!HHIIBBHHH")


def flag_names(flags: int) -> str:
    """``0x11`` -> ``FIN|ACK``."""
    return "|".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"


@dataclass(frozen=True)
class Segment:
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    payload: int  # bytes of data

    def describe(self) -> str:
        return (f"{self.src}:{self.sport} > {self.dst}:{self.dport} [{flag_names(self.flags)}] "
                f"seq {self.seq} ack {self.ack} len {self.payload}")


def _parse(packet: bytes) -> Segment | None:
    if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    sport, dport, seq, ack, offset, flags, *_ = _TCP.unpack_from(packet, ihl)
    return Segment(socket.inet_ntoa(packet[12:16]), sport, socket.inet_ntoa(packet[16:20]), dport,
                   seq, ack, flags, total - ihl - (offset >> 4) * 4)


class RawTcp:
    """One raw TCP socket: ``segments()`` seen so far, ``wait_for(...)`` the next one."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self.sock.setblocking(False)
        self.seen: list[Segment] = []

    def __enter__(self) -> RawTcp:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.sock.close()

    def segments(self) -> list[Segment]:
        """Read everything queued; return every segment seen since the socket opened."""
        while True:
            try:
                packet = self.sock.recv(65535)
            except BlockingIOError:
                return self.seen
            segment = _parse(packet)
            if segment is not None:
                self.seen.append(segment)

    async def wait_for(
        self, sport: int, dport: int, *, after: int, within: float, flags: int = 0
    ) -> Segment | None:
        """The first segment ``sport`` -> ``dport`` with all of ``flags``, seen after the first
        ``after`` ones, within ``within`` seconds; None if none came."""
        def first() -> Segment | None:
            return next((s for s in self.segments()[after:]
                         if (s.sport, s.dport) == (sport, dport) and s.flags & flags == flags), None)

        return await expect_within(first, timeout=within)

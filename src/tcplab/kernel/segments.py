"""TCP segments on loopback: capture them (AF_PACKET) and send one again (raw IP).

Some claims are about segments, not states: an old incarnation's segment arriving late at
a new connection is the textbook reason for TIME_WAIT. To reproduce it, a scenario
captures a real segment of one connection and later injects the very same bytes, which the
kernel then handles as if the network had delivered a stray duplicate.

Both need root (CAP_NET_RAW) and are meant for a scenario's private network namespace:
there the loopback carries nothing but the scenario's own traffic, and nothing leaves it.
IPv4 only. Loopback hands segments over with the TCP checksum left to "hardware"
(CHECKSUM_PARTIAL), so a captured checksum is not final: ``inject`` computes it again.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import trio

from tcplab.errors import Unavailable
from tcplab.kernel.model import Address

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
ETH_HEADER = 14
TCPOPT_TIMESTAMP = 8

FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"),
              (0x20, "URG"))


@dataclass(frozen=True)
class Segment:
    """One TCP/IPv4 segment as it went over loopback (``packet`` is the whole IP packet)."""

    src: Address
    dst: Address
    seq: int
    ack: int
    flags: int
    window: int
    tsval: int | None
    tsecr: int | None
    payload: bytes
    packet: bytes
    #: time.monotonic() when it was read from the capture.
    seen: float = 0.0

    @property
    def flag_names(self) -> str:
        return "|".join(name for bit, name in FLAG_NAMES if self.flags & bit) or "-"

    def describe(self) -> str:
        ts = f" TS {self.tsval}/{self.tsecr}" if self.tsval is not None else ""
        return (f"{self.src} > {self.dst} [{self.flag_names}] seq {self.seq} ack {self.ack} "
                f"win {self.window} len {len(self.payload)}{ts}")


def _timestamps(options: bytes) -> tuple[int | None, int | None]:
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            break
        length = options[i + 1]
        if kind == TCPOPT_TIMESTAMP and length == 10:
            tsval, tsecr = struct.unpack_from("!II", options, i + 2)
            return tsval, tsecr
        i += length
    return None, None


def parse_ipv4(packet: bytes, seen: float = 0.0) -> Segment | None:
    """The TCP segment in an IPv4 packet, or None if it is not one."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    packet = packet[:total]
    if len(packet) < ihl + 20:
        return None
    src = socket.inet_ntoa(packet[12:16])
    dst = socket.inet_ntoa(packet[16:20])
    sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", packet, ihl)
    doff = (offset_flags >> 12) * 4
    tsval, tsecr = _timestamps(packet[ihl + 20:ihl + doff])
    return Segment(Address(src, sport), Address(dst, dport), seq, ack, offset_flags & 0x3F,
                   window, tsval, tsecr, bytes(packet[ihl + doff:]), bytes(packet), seen)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_tcp_checksum(packet: bytes) -> bytes:
    """``packet`` (IPv4/TCP) with its TCP checksum computed over the pseudo-header."""
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    tcp = bytearray(packet[ihl:total])
    tcp[16:18] = b"\0\0"
    pseudo = packet[12:20] + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    struct.pack_into("!H", tcp, 16, _checksum(pseudo + bytes(tcp)))
    return bytes(packet[:ihl]) + bytes(tcp)


def inject(segment: Segment) -> None:
    """Send ``segment`` again, byte for byte (checksum recomputed), towards its destination.

    A raw IPPROTO_RAW socket sends the IP header as given (the kernel fills in the header
    checksum); on loopback the packet is then received like any other.
    """
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        raise Unavailable("injecting a segment needs CAP_NET_RAW: run as root") from None
    with raw:
        raw.sendto(with_tcp_checksum(segment.packet), (segment.dst.host, 0))


class Capture:
    """Every TCP/IPv4 segment sent on one interface (default ``lo``) while it is open.

    Loopback shows each packet twice (sent, then received); only the sending copy is kept.
    """

    def __init__(self, interface: str = "lo") -> None:
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise Unavailable("capturing packets needs CAP_NET_RAW: run as root") from None
        try:
            self._sock.bind((interface, ETH_P_ALL))
            self._sock.setblocking(False)
        except OSError as exc:  # no such interface here: say so, and keep no fd open
            self._sock.close()
            raise Unavailable(f"cannot capture on {interface}: {exc.strerror}") from None
        self.segments: list[Segment] = []

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def drain(self) -> list[Segment]:
        """Read what the kernel has queued for us; return the new segments (also kept)."""
        new: list[Segment] = []
        while True:
            try:
                frame, address = self._sock.recvfrom(1 << 17)
            except BlockingIOError:
                break
            if address[2] != PACKET_OUTGOING or address[1] != ETH_P_IP:
                continue
            segment = parse_ipv4(frame[ETH_HEADER:], time.monotonic())
            if segment is not None:
                new.append(segment)
        self.segments.extend(new)
        return new

    def find(self, match: Callable[[Segment], bool]) -> list[Segment]:
        self.drain()
        return [s for s in self.segments if match(s)]

    async def wait_for(self, match: Callable[[Segment], bool], *, deadline: float = 5.0) -> Segment:
        """The first captured segment for which ``match`` is true (polls until ``deadline`` s)."""
        with trio.move_on_after(deadline):
            while True:
                found = self.find(match)
                if found:
                    return found[0]
                await trio.sleep(0.002)
        raise TimeoutError(f"no matching segment captured within {deadline} s "
                           f"({len(self.segments)} captured)")

"""The one packet layer: TCP segments read off an interface, sent again, and filtered by cBPF.

* ``TcpFlags`` and ``Segment``: one TCP segment as it left its sender (IPv4 or IPv6), with
  absolute seq/ack, its payload length by the IP header, its timestamps option, and the
  bytes captured (enough to send it again).
* ``parse``: the one parser of IP packets (network header first) into segments.
* Classic BPF: ``assemble`` (labels instead of counted jumps), ``attach``/``detach`` on any
  socket. Two kinds of program use it. On the capture's packet socket the program sees the
  IP header at offset 0 (``capture_program``). On a TCP socket (``SO_ATTACH_FILTER`` runs
  in ``tcp_filter``, from ``tcp_v4_rcv``/``tcp_v6_rcv``, before any TCP processing,
  net/ipv4/tcp_ipv4.c) it sees the TCP header at offset 0 and reaches the IP header through
  ``SKF_NET_OFF``: a segment it refuses is discarded as if lost on the wire, which is how
  scenarios lose exactly the segments they want lost (this kernel has no netem, and taking
  ``lo`` down silences a whole namespace): ``deafen``, ``accept_only_syns``,
  ``accept_only_syns_from``.
* ``SegmentCapture``: an ``AF_PACKET`` socket bound to an interface (root), the recording's
  ``capture`` source (``tcplab.kernel.source.Source``). Every loopback packet passes the
  packet taps twice, leaving (``PACKET_OUTGOING``) and arriving (``PACKET_HOST``); the
  program keeps the outgoing copy only, so each segment is seen once, and only TCP to or
  from the watched ports, so concurrent scenarios do not pay for each other's traffic.
  ``every_port=True`` keeps all TCP (a scenario's private namespace). The socket lives in
  the network namespace of the process that opens it.
* ``Tap``: a ``SegmentCapture`` of every port that keeps what it read, for scenarios that
  read segments themselves; ``inject`` sends a captured IPv4 segment again, byte for byte,
  and ``reset_after`` forges the in-window reset that answers a captured segment.

Timestamps are the kernel's (``SO_TIMESTAMPNS``, CLOCK_REALTIME), moved to CLOCK_MONOTONIC
by the offset between the two clocks measured when the capture opens, so segments line up
with trace events, snapshots and ``time.monotonic()``.
"""

from __future__ import annotations

import ctypes
import enum
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

import trio

from tcplab.errors import Unavailable
from tcplab.kernel.model import Address
from tcplab.kernel.source import SourceUnavailable

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
TCPOPT_TIMESTAMP = 8

#: Bytes the recording keeps of each packet: IPv6 (40) + TCP with options (60) fit. Payload
#: lengths come from the IP header, so a bulk transfer costs a few bytes per segment.
SNAP = 128
#: Bytes a ``Tap`` keeps: whole packets, so that a captured segment can be sent again.
WHOLE = 0xFFFF
#: Most ports a capture program holds (cBPF jumps are 8-bit); beyond that it keeps all TCP
#: and ``SegmentCapture.read`` filters.
MAX_FILTER_PORTS = 48


class TcpFlags(enum.IntFlag):
    """The TCP header's flag bits (byte 13)."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80

    def text(self, sep: str = ",") -> str:
        """The flags in the order people say them: ``SYN,ACK``, ``FIN,ACK``; "" for none."""
        return sep.join(flag.name or "" for flag in _SAID if self & flag)


_SAID = (TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST, TcpFlags.PSH, TcpFlags.ACK, TcpFlags.URG,
         TcpFlags.ECE, TcpFlags.CWR)


class CaptureUnavailable(SourceUnavailable):
    """Packets cannot be captured here (not root, no such interface)."""


def available() -> str | None:
    """Why segments cannot be captured here, or None if they can (an AF_PACKET socket opens)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL)).close()
    except PermissionError:
        return "capturing packets needs root (CAP_NET_RAW)"
    except OSError as exc:
        return f"cannot open a packet socket: {exc.strerror}"
    return None


# -- segments ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Segment:
    """One TCP segment as it left its sender; seq/ack are absolute."""

    t: float  # CLOCK_MONOTONIC seconds (the kernel's stamp; 0.0 when parsed from bytes)
    src: Address
    dst: Address
    flags: TcpFlags
    seq: int
    ack: int
    window: int
    payload: int  # bytes of data, by the IP header (the capture may have kept fewer)
    tsval: int | None = None  # the timestamps option, if the captured header had one
    tsecr: int | None = None
    #: The packet as captured, IP header first (whole for a ``Tap``, ``SNAP`` bytes for the
    #: recording), and where its TCP payload starts in it.
    raw: bytes = b""
    header: int = 0

    @property
    def data(self) -> bytes:
        """The payload bytes captured (all of them unless the snap length cut them)."""
        return self.raw[self.header:self.header + self.payload]

    def describe(self) -> str:
        """``127.0.0.1:40000 > 127.0.0.1:80 [FIN|ACK] seq 1 ack 2 len 0``."""
        return (f"{self.src} > {self.dst} [{self.flags.text('|') or 'none'}] seq {self.seq} "
                f"ack {self.ack} len {self.payload}")


def _timestamps(options: bytes) -> tuple[int | None, int | None]:
    """TSval and TSecr from a TCP options block, (None, None) if it has none."""
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
        if kind == TCPOPT_TIMESTAMP and length == 10 and i + 10 <= len(options):
            tsval, tsecr = struct.unpack_from("!II", options, i + 2)
            return tsval, tsecr
        i += length
    return None, None


def parse(packet: bytes, t: float = 0.0) -> Segment | None:
    """An IPv4 or IPv6 packet (network header first) -> its TCP segment, or None (not TCP,
    too short). IPv6 extension headers are not followed: loopback TCP carries none."""
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20 and packet[9] == socket.IPPROTO_TCP:
        ihl = (packet[0] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        src = socket.inet_ntop(socket.AF_INET, packet[12:16])
        dst = socket.inet_ntop(socket.AF_INET, packet[16:20])
        ip_payload = total - ihl
        packet = packet[:total]
    elif version == 6 and len(packet) >= 40 and packet[6] == socket.IPPROTO_TCP:
        ihl = 40
        src = socket.inet_ntop(socket.AF_INET6, packet[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
        ip_payload = struct.unpack_from("!H", packet, 4)[0]
        packet = packet[:40 + ip_payload]
    else:
        return None
    if len(packet) < ihl + 20:
        return None
    sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", packet, ihl)
    doff = (offset_flags >> 12) * 4
    tsval, tsecr = _timestamps(packet[ihl + 20:ihl + doff])
    return Segment(t, Address(src, sport), Address(dst, dport), TcpFlags(offset_flags & 0xFF),
                   seq, ack, window, max(0, ip_payload - doff), tsval, tsecr, bytes(packet),
                   ihl + doff)


# -- classic BPF --------------------------------------------------------------------------

LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_H_IND, LDX_B_MSH = 0x20, 0x28, 0x30, 0x48, 0xB1
AND_K, JEQ_K, JSET_K, RET_K = 0x54, 0x15, 0x45, 0x06
SKF_AD_PKTTYPE = (-0x1000 + 4) & 0xFFFFFFFF  # ancillary load: skb->pkt_type
SKF_NET_OFF = -0x100000  # linux/filter.h: offsets from the network header
ACCEPT, DROP = 0xFFFFFFFF, 0
TCP_FLAGS = 13  # offset of the flags byte in a TCP header

Insn = tuple[int, int, int, int]
#: One line of a program before ``assemble``: an instruction whose jump targets may be label
#: names, or a label (a str) naming the next instruction.
Line = tuple[int, int | str, int | str, int] | str


def assemble(lines: Iterable[Line]) -> tuple[Insn, ...]:
    """Resolve label names into the relative jumps cBPF wants (0..255 forward)."""
    labels: dict[str, int] = {}
    code: list[tuple[int, int | str, int | str, int]] = []
    for line in lines:
        if isinstance(line, str):
            labels[line] = len(code)
        else:
            code.append(line)
    out = []
    for index, (op, jt, jf, k) in enumerate(code):
        jt = labels[jt] - index - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - index - 1 if isinstance(jf, str) else jf
        if not (0 <= jt < 256 and 0 <= jf < 256):
            raise ValueError(f"cBPF jump out of reach at instruction {index}")
        out.append((op, jt, jf, k))
    return tuple(out)


def attach(sock: socket.socket, program: Sequence[Insn]) -> None:
    """Attach the classic BPF ``program`` to ``sock``, replacing any (the kernel copies it)."""
    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def detach(sock: socket.socket) -> None:
    """Remove ``sock``'s filter: it receives everything again."""
    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)


def capture_program(ports: Iterable[int] | None, snap: int = SNAP) -> tuple[Insn, ...]:
    """For a SOCK_DGRAM packet socket (offsets from the network header): outgoing IPv4/IPv6
    TCP with a source or destination port in ``ports`` (None: any port), ``snap`` bytes."""
    wanted = sorted(set(ports)) if ports is not None else None

    def match_port() -> list[Line]:  # A holds a port
        return [(JEQ_K, "accept", 0, p) for p in wanted or ()]

    lines: list[Line] = [
        (LD_W_ABS, 0, 0, SKF_AD_PKTTYPE), (JEQ_K, 0, "drop", PACKET_OUTGOING),
        (LD_B_ABS, 0, 0, 0), (AND_K, 0, 0, 0xF0), (JEQ_K, 0, "v6", 0x40),
        (LD_B_ABS, 0, 0, 9), (JEQ_K, 0, "drop", socket.IPPROTO_TCP)]
    if wanted is None:
        lines.append((RET_K, 0, 0, snap))
    else:  # X = IPv4 header length; ports at X+0 and X+2
        lines += [(LDX_B_MSH, 0, 0, 0), (LD_H_IND, 0, 0, 0), *match_port(),
                  (LD_H_IND, 0, 0, 2), *match_port(), (RET_K, 0, 0, 0)]
    lines += ["v6", (JEQ_K, 0, "drop", 0x60), (LD_B_ABS, 0, 0, 6),
              (JEQ_K, 0, "drop", socket.IPPROTO_TCP)]
    if wanted is None:
        lines.append((RET_K, 0, 0, snap))
    else:
        lines += [(LD_H_ABS, 0, 0, 40), *match_port(), (LD_H_ABS, 0, 0, 42), *match_port()]
    lines += ["drop", (RET_K, 0, 0, DROP), "accept", (RET_K, 0, 0, snap)]
    return assemble(lines)


#: On a TCP socket: drop everything.
DEAF = assemble([(RET_K, 0, 0, DROP)])
#: On a TCP socket: only segments with SYN pass (a listener's handshakes never complete).
SYN_ONLY = assemble([(LD_B_ABS, 0, 0, TCP_FLAGS), (JSET_K, "accept", "drop", int(TcpFlags.SYN)),
                     "accept", (RET_K, 0, 0, ACCEPT), "drop", (RET_K, 0, 0, DROP)])


def syns_only_from(source: str) -> tuple[Insn, ...]:
    """On a TCP socket: from IPv4 ``source`` only SYNs pass; every other source passes."""
    address = int.from_bytes(socket.inet_aton(source), "big")
    return assemble([
        (LD_B_ABS, 0, 0, TCP_FLAGS), (JSET_K, "accept", 0, int(TcpFlags.SYN)),
        (LD_W_ABS, 0, 0, (SKF_NET_OFF + 12) & 0xFFFFFFFF),  # the IPv4 source address
        (JEQ_K, "drop", "accept", address),
        "accept", (RET_K, 0, 0, ACCEPT), "drop", (RET_K, 0, 0, DROP)])


def deafen(sock: socket.socket) -> None:
    """From now on ``sock`` receives nothing: a peer that is gone without a word."""
    attach(sock, DEAF)


def accept_only_syns(listener: socket.socket) -> None:
    """Handshakes on ``listener`` never complete: the final ACKs are dropped."""
    attach(listener, SYN_ONLY)


def accept_only_syns_from(listener: socket.socket, source: str) -> None:
    """Handshakes from ``source`` never complete on ``listener``; others do."""
    attach(listener, syns_only_from(source))


# -- the capture ----------------------------------------------------------------------------

def clock_offset_ns(samples: int = 7) -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC in ns, from the tightest of a few bracketed reads.

    Integer nanoseconds: a float of today's realtime has only ~0.2 µs of precision, and
    loopback segments and their effects are microseconds apart.
    """
    best: tuple[int, int] | None = None
    for _ in range(samples):
        before = time.monotonic_ns()
        real = time.time_ns()
        after = time.monotonic_ns()
        if best is None or after - before < best[0]:
            best = (after - before, real - (before + after) // 2)
    assert best is not None
    return best[1]


class SegmentCapture:
    """TCP segments sent on ``interface``; see the module docstring. An evidence source
    (``tcplab.kernel.source.Source``) named ``capture``."""

    name = "capture"

    def __init__(self, interface: str = "lo", *, snap: int = SNAP, every_port: bool = False,
                 rcvbuf: int = 4 << 20) -> None:
        self.interface = interface
        self.snap = snap
        self.every_port = every_port
        self.rcvbuf = rcvbuf
        self.ports: set[int] = set()
        self.sock: socket.socket | None = None
        self._offset_ns = 0  # CLOCK_REALTIME - CLOCK_MONOTONIC

    def open(self) -> SegmentCapture:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise CaptureUnavailable("capturing packets needs root (CAP_NET_RAW)") from None
        try:  # nothing until a port is watched, unless every port is
            attach(sock, capture_program(None if self.every_port else (), self.snap))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:  # beyond net.core.rmem_max (root), so a burst is not lost
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self.rcvbuf)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.bind((self.interface, ETH_P_ALL))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise CaptureUnavailable(f"cannot capture on {self.interface}: {exc.strerror}") from None
        self.sock = sock
        self._offset_ns = clock_offset_ns()
        return self

    def __enter__(self) -> SegmentCapture:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def fileno(self) -> int:
        """The packet socket's fd (readable when segments wait), -1 once closed."""
        return self.sock.fileno() if self.sock is not None else -1

    def watch_port(self, port: int) -> None:
        """Capture segments to or from ``port`` from now on (the kernel filter is replaced)."""
        if port in self.ports or self.sock is None:
            return
        self.ports.add(port)
        if not self.every_port:
            few = len(self.ports) <= MAX_FILTER_PORTS
            attach(self.sock, capture_program(self.ports if few else None, self.snap))

    def read(self) -> list[Segment]:
        """Every segment queued since the last read, oldest first; never blocks."""
        out: list[Segment] = []
        if self.sock is None:
            return out
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(1 << 16, 64)
            except (BlockingIOError, InterruptedError):
                return out
            t = time.monotonic()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    t = (sec * 1_000_000_000 + nsec - self._offset_ns) / 1e9
            segment = parse(data, t)
            if segment is not None and (self.every_port
                                        or self.ports & {segment.src.port, segment.dst.port}):
                out.append(segment)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Tap:
    """Every TCP segment sent on ``interface`` while open, whole and kept in order: for a
    scenario that reads segments itself, in a namespace of its own (there loopback carries
    only its traffic). ``segments()`` is all seen so far; ``first`` waits for one."""

    def __init__(self, interface: str = "lo", *, rcvbuf: int = 8 << 20) -> None:
        self.capture = SegmentCapture(interface, snap=WHOLE, every_port=True, rcvbuf=rcvbuf)
        self.seen: list[Segment] = []

    def __enter__(self) -> Tap:
        try:
            self.capture.open()
        except CaptureUnavailable as exc:
            raise Unavailable(str(exc)) from None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.capture.close()

    def segments(self) -> list[Segment]:
        """Read what is queued; return every segment seen since the tap opened."""
        self.seen.extend(self.capture.read())
        return self.seen

    async def first(self, match: Callable[[Segment], bool], *, after: int = 0,
                    timeout: float) -> Segment | None:
        """The first segment (of those seen after the first ``after``) that ``match``es,
        polled for up to ``timeout`` seconds; None if none came."""
        with trio.move_on_after(timeout):
            while True:
                found = next((s for s in self.segments()[after:] if match(s)), None)
                if found is not None:
                    return found
                await trio.sleep(0.002)
        return next((s for s in self.segments()[after:] if match(s)), None)


# -- sending a segment again -------------------------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_tcp_checksum(packet: bytes) -> bytes:
    """``packet`` (IPv4/TCP) with its TCP checksum computed over the pseudo-header. Loopback
    hands segments over with the checksum left to "hardware" (CHECKSUM_PARTIAL), so a
    captured checksum is not final."""
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    tcp = bytearray(packet[ihl:total])
    tcp[16:18] = b"\0\0"
    pseudo = packet[12:20] + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    struct.pack_into("!H", tcp, 16, _checksum(pseudo + bytes(tcp)))
    return bytes(packet[:ihl]) + bytes(tcp)


def reset_after(seg: Segment) -> Segment:
    """A bare RST from ``seg``'s sender to its receiver (IPv4, no TCP options, so no PAWS
    check), with the sequence number the receiver expects next: after ``seg``'s data, SYN
    and FIN. Injected (``inject``), it is an in-window reset forged from a captured segment."""
    if seg.src.family != socket.AF_INET:
        raise ValueError(f"cannot forge a reset (IPv4 only): {seg.describe()}")
    seq = (seg.seq + seg.payload + (TcpFlags.SYN in seg.flags) + (TcpFlags.FIN in seg.flags))
    tcp = struct.pack("!HHIIBBHHH", seg.src.port, seg.dst.port, seq % 2**32, 0, 5 << 4,
                      int(TcpFlags.RST), 0, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(seg.src.host), socket.inet_aton(seg.dst.host))
    made = parse(ip + tcp)
    assert made is not None
    return made


def inject(segment: Segment) -> None:
    """Send a captured IPv4 ``segment`` again, byte for byte (checksum recomputed).

    A raw IPPROTO_RAW socket sends the IP header as given (the kernel fills in the header
    checksum); on loopback the packet is then received like any other: the kernel handles
    it as a stray duplicate the network delivered late.
    """
    if segment.src.family != socket.AF_INET or len(segment.raw) < segment.header + segment.payload:
        raise ValueError(f"cannot send again (IPv4 and whole only): {segment.describe()}")
    try:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        raise Unavailable("injecting a segment needs CAP_NET_RAW: run as root") from None
    with raw:
        raw.sendto(with_tcp_checksum(segment.raw), (segment.dst.host, 0))

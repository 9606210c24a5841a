"""TCP segments on the loopback interface, for the scenario's ports only.

An ``AF_PACKET`` socket bound to ``lo`` (root). Every loopback packet passes the packet taps
twice: once leaving (``PACKET_OUTGOING``) and once arriving (``PACKET_HOST``); we keep the
outgoing copy only, so each segment is counted once. A classic BPF program attached to the
socket does both jobs in the kernel — keep outgoing TCP segments whose source or
destination port is one of ours — so concurrent scenarios do not pay for each other's
traffic. The socket lives in the network namespace of the process that opens it: a
scenario in a private namespace sees its own ``lo`` only.

Timestamps are the kernel's (``SO_TIMESTAMPNS``, CLOCK_REALTIME), moved to CLOCK_MONOTONIC
by the offset between the two clocks measured when the capture opens, so segments line up
with trace events and snapshots.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tcplab.kernel.model import Address
from tcplab.kernel.source import SourceUnavailable

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SKF_AD_PKTTYPE = -0x1000 + 4  # ancillary load: skb->pkt_type

# classic BPF opcodes
_LD_W_ABS, _LD_H_ABS, _LD_B_ABS, _LD_H_IND = 0x20, 0x28, 0x30, 0x48
_LDX_B_MSH, _AND_K, _JEQ_K, _RET_K = 0xB1, 0x54, 0x15, 0x06

#: Bytes kept of each packet: IPv6 (40) + TCP with options (60) fit. Payload lengths come
#: from the IP header, so a bulk transfer costs the capture a few bytes per segment.
SNAP = 128

#: Most ports a filter holds (cBPF jumps are 8-bit); beyond that, keep all TCP and filter here.
MAX_FILTER_PORTS = 48

FLAG_NAMES = (("SYN", 0x02), ("FIN", 0x01), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10),
              ("URG", 0x20))


class CaptureUnavailable(SourceUnavailable):
    """Packets cannot be captured here (not root, no loopback interface)."""


def available() -> str | None:
    """Why segments cannot be captured here, or None if they can (an AF_PACKET socket opens)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL)).close()
    except PermissionError:
        return "capturing packets needs root (CAP_NET_RAW)"
    except OSError as exc:
        return f"cannot open a packet socket: {exc.strerror}"
    return None


@dataclass(frozen=True)
class Segment:
    """One TCP segment as it left its sender on loopback; seq/ack are absolute here."""

    t: float  # CLOCK_MONOTONIC seconds
    src: Address
    dst: Address
    flags: str  # "SYN", "SYN,ACK", "ACK", "FIN,ACK", "RST", "PSH,ACK", ...
    seq: int
    ack: int
    payload: int
    window: int

    @property
    def flag_set(self) -> frozenset[str]:
        return frozenset(self.flags.split(",")) if self.flags else frozenset()

    def to_json(self) -> dict[str, Any]:
        return {"t_mono": round(self.t, 6), "src": str(self.src), "dst": str(self.dst),
                "flags": self.flags, "seq": self.seq, "ack": self.ack, "len": self.payload,
                "win": self.window}


def flag_text(bits: int) -> str:
    """TCP header flag bits -> ``SYN,ACK`` (in the order people say them)."""
    return ",".join(name for name, bit in FLAG_NAMES if bits & bit)


def parse_ip_packet(data: bytes, t: float) -> Segment | None:
    """An IPv4 or IPv6 packet (network header first) -> its TCP segment, or None."""
    if not data:
        return None
    version = data[0] >> 4
    if version == 4 and len(data) >= 20 and data[9] == socket.IPPROTO_TCP:
        ihl = (data[0] & 0x0F) * 4
        total = struct.unpack_from("!H", data, 2)[0]
        src_ip, dst_ip = socket.inet_ntop(socket.AF_INET, data[12:16]), socket.inet_ntop(socket.AF_INET, data[16:20])
        tcp, ip_payload = data[ihl:], total - ihl
    elif version == 6 and len(data) >= 40 and data[6] == socket.IPPROTO_TCP:
        src_ip = socket.inet_ntop(socket.AF_INET6, data[8:24])
        dst_ip = socket.inet_ntop(socket.AF_INET6, data[24:40])
        tcp, ip_payload = data[40:], struct.unpack_from("!H", data, 4)[0]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack, offset_flags, window = struct.unpack_from("!HHIIHH", tcp, 0)
    header = (offset_flags >> 12) * 4
    return Segment(t, Address(src_ip, sport), Address(dst_ip, dport), flag_text(offset_flags & 0x3F),
                   seq, ack, max(0, ip_payload - header), window)


def bpf_program(ports: Iterable[int] | None) -> list[tuple[int, int, int, int]]:
    """A cBPF program: outgoing IPv4/IPv6 TCP with a source or destination port in ``ports``.

    ``ports=None`` keeps all outgoing TCP (for too many ports; the caller filters).
    Offsets are from the network header (SOCK_DGRAM packet sockets strip the link header).
    """
    wanted = sorted(set(ports)) if ports is not None else None
    prog: list[tuple[Any, Any, Any, int]] = []  # (code or label, jt, jf, k): labels resolved below

    def ports_test() -> None:  # A holds a port: jump to "accept" on a match
        for p in wanted or ():
            prog.append((_JEQ_K, "accept", 0, p))

    prog.append((_LD_W_ABS, 0, 0, SKF_AD_PKTTYPE & 0xFFFFFFFF))
    prog.append((_JEQ_K, 0, "drop", PACKET_OUTGOING))
    prog.append((_LD_B_ABS, 0, 0, 0))
    prog.append((_AND_K, 0, 0, 0xF0))
    prog.append((_JEQ_K, 0, "v6", 0x40))
    prog.append((_LD_B_ABS, 0, 0, 9))
    prog.append((_JEQ_K, 0, "drop", socket.IPPROTO_TCP))
    if wanted is None:
        prog.append((_RET_K, 0, 0, SNAP))
    else:
        prog.append((_LDX_B_MSH, 0, 0, 0))
        prog.append((_LD_H_IND, 0, 0, 0))
        ports_test()
        prog.append((_LD_H_IND, 0, 0, 2))
        ports_test()
        prog.append((_RET_K, 0, 0, 0))
    prog.append(("v6", 0, 0, 0))
    prog.append((_JEQ_K, 0, "drop", 0x60))
    prog.append((_LD_B_ABS, 0, 0, 6))
    prog.append((_JEQ_K, 0, "drop", socket.IPPROTO_TCP))
    if wanted is None:
        prog.append((_RET_K, 0, 0, SNAP))
    else:
        prog.append((_LD_H_ABS, 0, 0, 40))
        ports_test()
        prog.append((_LD_H_ABS, 0, 0, 42))
        ports_test()
    prog.append(("drop", 0, 0, 0))
    prog.append((_RET_K, 0, 0, 0))
    prog.append(("accept", 0, 0, 0))
    prog.append((_RET_K, 0, 0, SNAP))
    # resolve labels: a label line marks the index of the next instruction
    labels: dict[str, int] = {}
    code: list[tuple[Any, Any, Any, int]] = []
    for ins in prog:
        if isinstance(ins[0], str):
            labels[ins[0]] = len(code)
        else:
            code.append(ins)
    out = []
    for index, (op, jt, jf, k) in enumerate(code):
        jt = labels[jt] - index - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - index - 1 if isinstance(jf, str) else jf
        assert 0 <= jt < 256 and 0 <= jf < 256, "BPF jump too far"
        out.append((op, jt, jf, k))
    return out


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


def _attach(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *ins) for ins in program)
    buffer = ctypes.create_string_buffer(raw)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class SegmentCapture:
    """Captures this scenario's TCP segments on ``lo``; see the module docstring. An evidence
    source (``tcplab.kernel.source.Source``) named ``capture``."""

    name = "capture"

    def __init__(self, interface: str = "lo") -> None:
        self.interface = interface
        self.ports: set[int] = set()
        self.sock: socket.socket | None = None
        self._offset_ns = 0  # CLOCK_REALTIME - CLOCK_MONOTONIC

    def open(self) -> SegmentCapture:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise CaptureUnavailable("capturing packets needs root (CAP_NET_RAW)") from None
        try:
            _attach(sock, bpf_program(()))  # nothing until a port is watched
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
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
        _attach(self.sock, bpf_program(self.ports if len(self.ports) <= MAX_FILTER_PORTS else None))

    def read(self) -> list[Segment]:
        """Every segment queued since the last read, oldest first; never blocks."""
        out: list[Segment] = []
        if self.sock is None:
            return out
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(65536, 64)
            except (BlockingIOError, InterruptedError):
                return out
            t = time.monotonic()
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    t = (sec * 1_000_000_000 + nsec - self._offset_ns) / 1e9
            segment = parse_ip_packet(data, t)
            if segment is not None and self.ports & {segment.src.port, segment.dst.port}:
                out.append(segment)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

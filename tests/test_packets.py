"""The one packet layer (tcplab.kernel.packets): flags, the IPv4/IPv6 parser, the cBPF
programs (on a packet socket and on TCP sockets), the capture and the replay.

The socket filters are checked against the real kernel on loopback (no root needed): a
deaf socket must not receive, and a SYN-only listener must never complete a handshake. The
capture and the replay need root; they run on this namespace's loopback and look at their
own ports only.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import socket
import struct
import termios
import time
from pathlib import Path

import pytest

from tcplab.kernel import packets
from tcplab.kernel.packets import TcpFlags

ROOT = Path(__file__).resolve().parent.parent
root_only = pytest.mark.skipif(os.geteuid() != 0 or packets.available() is not None,
                               reason="capturing packets needs root")


# -- flags and parsing ------------------------------------------------------------------------

def test_flags_say_their_names_in_the_usual_order() -> None:
    assert TcpFlags(0x12).text() == "SYN,ACK"
    assert (TcpFlags.FIN | TcpFlags.ACK).text("|") == "FIN|ACK"
    assert TcpFlags(0x18).text() == "PSH,ACK"
    assert TcpFlags(0).text() == ""
    assert TcpFlags.RST in TcpFlags(0x14) and TcpFlags.SYN not in TcpFlags(0x14)


def _tcp(sport: int, dport: int, flags: int, options: bytes = b"") -> bytes:
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIHHHH", sport, dport, 1000, 2000, (doff << 12) | flags, 512, 0,
                       0) + options


def _ipv4(tcp: bytes, payload: bytes = b"", pad: bytes = b"") -> bytes:
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.2"))
    return ip + tcp + payload + pad


def _ipv6(tcp: bytes, payload: bytes = b"") -> bytes:
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(tcp) + len(payload), socket.IPPROTO_TCP, 64,
                     socket.inet_pton(socket.AF_INET6, "::1"),
                     socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1"))
    return ip + tcp + payload


def test_parse_ipv4_with_payload() -> None:
    seg = packets.parse(_ipv4(_tcp(4000, 80, 0x18), b"hello", pad=b"\0" * 6), 1.5)
    assert seg is not None
    assert (str(seg.src), str(seg.dst), seg.flags, seg.payload) == (
        "127.0.0.1:4000", "127.0.0.2:80", TcpFlags.PSH | TcpFlags.ACK, 5)
    assert (seg.seq, seg.ack, seg.window, seg.t, seg.data) == (1000, 2000, 512, 1.5, b"hello")
    assert len(seg.raw) == 45  # the packet, without what followed it in the frame
    assert seg.describe() == "127.0.0.1:4000 > 127.0.0.2:80 [PSH|ACK] seq 1000 ack 2000 len 5"


def test_parse_ipv6_with_timestamps() -> None:
    options = b"\x01\x01\x08\x0a" + struct.pack("!II", 7, 9)  # NOP NOP TS 7/9
    seg = packets.parse(_ipv6(_tcp(4000, 80, 0x11, options), b"xy"))
    assert seg is not None
    assert (seg.src.host, seg.dst.host, seg.flags.text()) == ("::1", "::ffff:127.0.0.1", "FIN,ACK")
    assert (seg.tsval, seg.tsecr, seg.payload, seg.data) == (7, 9, 2, b"xy")
    assert str(seg.src) == "[::1]:4000"


def test_payload_length_comes_from_the_ip_header_when_the_capture_cut_it() -> None:
    whole = _ipv4(_tcp(4000, 80, 0x18), b"x" * 1000)
    seg = packets.parse(whole[:packets.SNAP])
    assert seg is not None and seg.payload == 1000 and len(seg.data) < 1000


def test_not_tcp_or_too_short_is_none() -> None:
    udp = bytearray(_ipv4(_tcp(1, 2, 0)))
    udp[9] = socket.IPPROTO_UDP
    assert packets.parse(bytes(udp)) is None
    assert packets.parse(_ipv4(_tcp(1, 2, 0))[:30]) is None
    assert packets.parse(b"") is None
    assert packets.parse(b"\x60" + bytes(10)) is None


def test_checksum_for_replay_is_the_internet_checksum() -> None:
    packet = packets.with_tcp_checksum(_ipv4(_tcp(4000, 80, 0x18), b"hello"))
    tcp = packet[20:]
    pseudo = packet[12:20] + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    assert packets._checksum(pseudo + tcp) == 0  # a correct checksum sums to all ones


# -- cBPF -------------------------------------------------------------------------------------

def test_assemble_resolves_labels_and_refuses_far_jumps() -> None:
    program = packets.assemble([(packets.JEQ_K, "yes", 0, 1), (packets.RET_K, 0, 0, 0),
                                "yes", (packets.RET_K, 0, 0, 1)])
    assert program == ((packets.JEQ_K, 1, 0, 1), (packets.RET_K, 0, 0, 0),
                       (packets.RET_K, 0, 0, 1))
    with pytest.raises(ValueError, match="out of reach"):
        packets.assemble([(packets.JEQ_K, "far", 0, 0), *[(packets.RET_K, 0, 0, 0)] * 300,
                          "far", (packets.RET_K, 0, 0, 0)])


def test_capture_program_is_well_formed() -> None:
    for ports in ((), (80,), tuple(range(1000, 1000 + packets.MAX_FILTER_PORTS)), None):
        program = packets.capture_program(ports)
        assert program[-1][0] == packets.RET_K
        for index, (op, jt, jf, _k) in enumerate(program):
            if op == packets.JEQ_K:  # both targets inside the program
                assert index + 1 + jt < len(program) and index + 1 + jf < len(program)


def _pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def _outq(sock: socket.socket) -> int:
    """Bytes in ``sock``'s send queue, unsent or unacknowledged (SIOCOUTQ)."""
    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0])


def _abort(*socks: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0): a pair closed while a filter drops segments would
    otherwise be orphaned in FIN_WAIT1/LAST_ACK, retransmitting on loopback for minutes."""
    for sock in socks:
        with contextlib.suppress(OSError):  # no filter left: nothing to detach
            packets.detach(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def test_deaf_socket_receives_nothing_until_detached() -> None:
    listener, client, server = _pair()
    with contextlib.closing(listener), contextlib.ExitStack() as stack:
        stack.callback(_abort, client, server)  # whatever fails below
        packets.deafen(server)
        client.sendall(b"hello")
        server.setblocking(False)
        # Held, polled: for 0.2 s nothing is readable, and the bytes stay unacknowledged in
        # the client's send queue (dropped by the filter, not merely late).
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            with pytest.raises(BlockingIOError):
                server.recv(10)
            assert _outq(client) == len(b"hello")
            time.sleep(0.02)
        packets.detach(server)  # the retransmission gets through
        server.settimeout(5)
        assert server.recv(10) == b"hello"


def test_syn_only_listener_never_completes_a_handshake() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        packets.accept_only_syns(listener)
        with socket.create_connection(listener.getsockname(), timeout=1):
            listener.setblocking(False)
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:  # held, polled: the final ACK was dropped
                with pytest.raises(BlockingIOError):
                    listener.accept()
                time.sleep(0.02)


def test_syns_only_from_one_address_lets_the_others_complete() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        packets.accept_only_syns_from(listener, "127.0.0.1")
        with socket.create_connection(listener.getsockname(), timeout=1,
                                      source_address=("127.0.0.2", 0)):
            listener.settimeout(1)
            accepted, peer = listener.accept()  # from 127.0.0.2: completed
            accepted.close()
            assert peer[0] == "127.0.0.2"
        with socket.create_connection(listener.getsockname(), timeout=1):  # from 127.0.0.1
            listener.setblocking(False)
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:  # held, polled: its final ACK was dropped
                with pytest.raises(BlockingIOError):
                    listener.accept()
                time.sleep(0.02)


# -- the capture and the replay (root) --------------------------------------------------------

@pytest.mark.root
@root_only
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_capture_sees_each_segment_of_its_ports_once(host: str) -> None:
    with packets.SegmentCapture() as capture:
        listener = socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host
                                        else socket.AF_INET)
        port = listener.getsockname()[1]
        capture.watch_port(port)
        with listener, socket.create_connection((host, port)) as client:
            server, _ = listener.accept()
            with server:
                client.sendall(b"hi")
                assert server.recv(2) == b"hi"
        deadline, got = time.monotonic() + 2, list[packets.Segment]()
        while time.monotonic() < deadline and len(got) < 7:
            got += capture.read()
            time.sleep(0.01)
    said = [s.flags.text() for s in got]
    assert said[:4] == ["SYN", "SYN,ACK", "ACK", "PSH,ACK"], said
    assert all(port in (s.src.port, s.dst.port) for s in got)
    assert got[3].payload == 2 and got[0].tsval is not None
    assert all(a.t <= b.t for a, b in itertools.pairwise(got))
    assert abs(got[0].t - time.monotonic()) < 5  # CLOCK_MONOTONIC seconds


@pytest.mark.root
@root_only
async def test_tap_keeps_whole_segments_and_inject_sends_one_again() -> None:
    with packets.Tap() as tap, socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            server, _ = listener.accept()
            with server:
                marker = b"MARKED " + os.urandom(4).hex().encode()
                client.sendall(marker)
                assert server.recv(100) == marker
                seg = await tap.first(lambda s: s.data == marker, timeout=2)
                assert seg is not None and seg.dst.port == port
                mark = len(tap.segments())
                packets.inject(seg)  # a duplicate: the server answers with a duplicate ACK
                again = await tap.first(lambda s: s.data == marker, after=mark, timeout=2)
                dup_ack = await tap.first(lambda s: s.src.port == port and s.ack == seg.seq
                                          + seg.payload, after=mark, timeout=2)
                assert again is not None and dup_ack is not None
                server.setblocking(False)
                with pytest.raises(BlockingIOError):
                    server.recv(100)  # not delivered twice


# -- one of each ---------------------------------------------------------------------------

#: What parsing TCP headers, opening packet sockets or attaching cBPF looks like in code.
_PACKET_WORK = re.compile(r"socket\.AF_PACKET|SOCK_RAW|SO_ATTACH_FILTER|SO_DETACH_FILTER"
                          r"|[\"']!HHII|offset_flags|class Segment\b|class TcpFlags\b")


def test_one_packet_layer() -> None:
    """The old modules are gone, and only tcplab.kernel.packets parses TCP headers, opens
    packet or raw sockets, or attaches classic BPF."""
    for old in ("src/tcplab/kernel/capture.py", "src/tcplab/kernel/segments.py",
                "scenarios/_rawtcp.py", "scenarios/_filters.py"):
        assert not (ROOT / old).exists(), old
    ours = ROOT / "src/tcplab/kernel/packets.py"
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for folder in ("src", "scenarios") for path in sorted((ROOT / folder).rglob("*.py"))
             if path != ours
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if _PACKET_WORK.search(line)]
    assert found == []
    old_names = re.compile(r"\b_rawtcp\b|\b_filters\b|kernel\.capture\b|kernel\.segments\b"
                           r"|kernel import .*\b(capture|segments)\b")
    users = [f"{path.relative_to(ROOT)}:{n}" for folder in ("src", "scenarios", "tests")
             for path in sorted((ROOT / folder).rglob("*.py")) if path.name != "test_packets.py"
             for n, line in enumerate(path.read_text().splitlines(), 1) if old_names.search(line)]
    assert users == []

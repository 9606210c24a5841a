"""Parsing what tracefs and the packet tap give us, without needing root."""

from __future__ import annotations

import socket
import struct

from tcplab.kernel import capture, trace
from tcplab.states import TcpState

STATE_LINE = (
    "         python3-6777    [000] ..s2.   580.312172: inet_sock_set_state: family=AF_INET "
    "protocol=IPPROTO_TCP sport=52922 dport=35029 saddr=127.0.0.1 daddr=127.0.0.1 "
    "saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 oldstate=TCP_FIN_WAIT1 newstate=TCP_CLOSE"
)
RESET_LINE = (
    "         python3-6777    [000] .....   580.406845: tcp_send_reset: skbaddr=0000000000000000 "
    "skaddr=0000000040ca57e8 src=127.0.0.1:52928 dest=127.0.0.1:35029 state=TCP_CLOSE "
    "reason=TCP_STATE"
)


def test_state_change_line() -> None:
    event = trace.parse_line(STATE_LINE)
    assert event is not None
    assert (event.kind, event.sport, event.dport) == ("state", 52922, 35029)
    assert (event.old, event.new) == (TcpState.FIN_WAIT1, TcpState.CLOSED)
    assert event.t == 580.312172


def test_sent_reset_line_takes_ports_from_the_packet() -> None:
    event = trace.parse_line(RESET_LINE)
    assert event is not None
    assert (event.kind, event.sport, event.dport, event.state) == (
        "reset-sent", 52928, 35029, TcpState.CLOSED)
    assert trace.parse_line("CPU:0 [LOST 3 EVENTS]") is None


def test_port_filter_matches_nothing_until_a_port_is_watched() -> None:
    assert trace.port_filter([]) == "sport == 0 && dport == 0"
    assert trace.port_filter([7, 5]) == "sport == 5 || dport == 5 || sport == 7 || dport == 7"


def _ipv4_tcp(sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIHHHH", sport, dport, 1000, 2000, (5 << 12) | flags, 512, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.2"))
    return ip + tcp + payload


def test_segment_parsing() -> None:
    seg = capture.parse_ip_packet(_ipv4_tcp(4000, 80, 0x18, b"hello"), 1.5)
    assert seg is not None
    assert (seg.src.port, seg.dst.port, seg.flags, seg.payload) == (4000, 80, "PSH,ACK", 5)
    assert (seg.seq, seg.ack, seg.window, seg.t) == (1000, 2000, 512, 1.5)
    assert capture.flag_text(0x12) == "SYN,ACK"
    assert capture.parse_ip_packet(b"\x45" + b"\x00" * 8 + b"\x11" + b"\x00" * 10, 0) is None


def test_bpf_program_is_well_formed() -> None:
    for ports in ((), (80,), tuple(range(1000, 1000 + capture.MAX_FILTER_PORTS)), None):
        program = capture.bpf_program(ports)
        assert program[-1][0] == 0x06  # ends in a return
        for index, (op, jt, jf, _k) in enumerate(program):
            if op == 0x15:  # jeq: both targets inside the program
                assert index + 1 + jt < len(program) and index + 1 + jf < len(program)

"""Parsing what tracefs gives us, without needing root (packets: tests/test_packets.py)."""

from __future__ import annotations

from tcplab.kernel import trace
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

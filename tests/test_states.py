"""RFC 9293's diagram as data: legal and illegal paths, the kernel's numbering, spellings."""

from __future__ import annotations

import itertools

import pytest

from tcplab.states import (
    ALL_KERNEL_STATES_MASK,
    KERNEL_NUMBER,
    TRANSITIONS,
    IllegalPath,
    TcpState,
    check_path,
    from_kernel,
    kernel_mask,
    next_states,
    reachable,
)

S = TcpState

#: Real lifecycles, every step one arrow of figure 5 (a trace would show each of them).
LEGAL_STRICT = [
    pytest.param([S.CLOSED, S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2, S.TIME_WAIT,
                  S.CLOSED], id="active-close"),
    pytest.param([S.CLOSED, S.LISTEN, S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT, S.LAST_ACK,
                  S.CLOSED], id="passive-close"),
    pytest.param([S.ESTABLISHED, S.FIN_WAIT1, S.CLOSING, S.TIME_WAIT], id="simultaneous-close"),
    pytest.param([S.ESTABLISHED, S.FIN_WAIT1, S.TIME_WAIT], id="fin-and-ack-together"),
    pytest.param([S.SYN_SENT, S.SYN_RECV, S.ESTABLISHED], id="simultaneous-open"),
    pytest.param([S.ESTABLISHED, S.CLOSED], id="reset"),
    pytest.param([S.SYN_RECV, S.LISTEN], id="rst-back-to-listen"),
    pytest.param([S.ESTABLISHED, S.ESTABLISHED, S.CLOSE_WAIT], id="repeats-allowed"),
    pytest.param([], id="empty"),
    pytest.param([S.TIME_WAIT], id="single"),
]

#: Snapshots that skip short states: legal loosely (reachable), not strictly (no one arrow).
SKIPPING = [
    pytest.param([S.ESTABLISHED, S.FIN_WAIT2, S.TIME_WAIT], id="fin-wait1-missed"),
    pytest.param([S.ESTABLISHED, S.TIME_WAIT], id="straight-to-time-wait"),
    pytest.param([S.CLOSE_WAIT, S.CLOSED], id="last-ack-missed-is-an-arrow"),
    pytest.param([S.LISTEN, S.ESTABLISHED], id="syn-recv-missed"),
]

#: Moves no walk of the diagram makes, however many snapshots were missed.
ILLEGAL = [
    pytest.param([S.TIME_WAIT, S.ESTABLISHED], id="time-wait-back-to-established"),
    pytest.param([S.CLOSE_WAIT, S.FIN_WAIT2], id="passive-to-active-closer"),
    pytest.param([S.FIN_WAIT2, S.CLOSE_WAIT], id="active-to-passive-closer"),
    pytest.param([S.LAST_ACK, S.TIME_WAIT], id="last-ack-to-time-wait"),
    pytest.param([S.FIN_WAIT2, S.FIN_WAIT1], id="backwards"),
    pytest.param([S.TIME_WAIT, S.LISTEN], id="time-wait-to-listen"),
]


@pytest.mark.parametrize("path", LEGAL_STRICT)
def test_legal_paths_pass_both_ways(path: list[TcpState]) -> None:
    check_path(path, strict=True)
    check_path(path, strict=False)


@pytest.mark.parametrize("path", SKIPPING)
def test_skipped_states_pass_loosely_only_when_no_arrow(path: list[TcpState]) -> None:
    check_path(path, strict=False)
    one_arrow = all(b is a or b in next_states(a) for a, b in itertools.pairwise(path))
    if one_arrow:
        check_path(path, strict=True)
    else:
        with pytest.raises(IllegalPath, match="no arrow from"):
            check_path(path, strict=True)


@pytest.mark.parametrize("path", ILLEGAL)
def test_illegal_paths_fail_both_ways(path: list[TcpState]) -> None:
    with pytest.raises(IllegalPath, match="no arrow from"):
        check_path(path, strict=True)
    with pytest.raises(IllegalPath, match="no path from") as failure:
        check_path(path, strict=False)
    assert " -> ".join(s.value for s in path) in str(failure.value)


def test_every_state_but_closed_can_end_closed_and_time_wait_only_so() -> None:
    for state in S:
        if state is not S.CLOSED:
            assert reachable(state, S.CLOSED), state
    assert next_states(S.TIME_WAIT) == {S.CLOSED}
    assert not reachable(S.TIME_WAIT, S.TIME_WAIT)
    assert all(t.event for t in TRANSITIONS)


@pytest.mark.parametrize(
    ("number", "state"),
    [(1, S.ESTABLISHED), (2, S.SYN_SENT), (3, S.SYN_RECV), (4, S.FIN_WAIT1), (5, S.FIN_WAIT2),
     (6, S.TIME_WAIT), (7, S.CLOSED), (8, S.CLOSE_WAIT), (9, S.LAST_ACK), (10, S.LISTEN),
     (11, S.CLOSING), (12, S.SYN_RECV), (13, S.CLOSED)],
)
def test_from_kernel_numbers_of_include_net_tcp_states_h(number: int, state: TcpState) -> None:
    """12 (TCP_NEW_SYN_RECV, a request socket) and 13 (TCP_BOUND_INACTIVE) fold into RFC states."""
    assert from_kernel(number) is state


@pytest.mark.parametrize("number", [0, 14, 255, -1])
def test_from_kernel_rejects_unknown_numbers(number: int) -> None:
    with pytest.raises(ValueError, match=f"state number {number}, unknown"):
        from_kernel(number)


def test_kernel_numbers_and_masks() -> None:
    assert KERNEL_NUMBER[S.SYN_RECV] == 3 and KERNEL_NUMBER[S.CLOSED] == 7
    assert all(from_kernel(n) is s for s, n in KERNEL_NUMBER.items())
    assert kernel_mask([S.SYN_RECV]) == (1 << 3) | (1 << 12)
    assert kernel_mask([S.CLOSED]) == (1 << 7) | (1 << 13)
    assert kernel_mask(S) == ALL_KERNEL_STATES_MASK == sum(1 << n for n in range(1, 14))
    assert kernel_mask([]) == 0


@pytest.mark.parametrize(
    ("text", "state"),
    [("ESTABLISHED", S.ESTABLISHED), ("close-wait", S.CLOSE_WAIT), ("CLOSE_WAIT", S.CLOSE_WAIT),
     ("syn-recv", S.SYN_RECV), ("SYN_RECEIVED", S.SYN_RECV), ("FIN-WAIT-1", S.FIN_WAIT1),
     ("fin_wait2", S.FIN_WAIT2), ("TIME-WAIT", S.TIME_WAIT), ("timewait", S.TIME_WAIT),
     ("  last-ack ", S.LAST_ACK), ("close", S.CLOSED), ("Listen", S.LISTEN), ("closing", S.CLOSING)],
)
def test_parse_accepts_the_spellings_people_type(text: str, state: TcpState) -> None:
    assert TcpState.parse(text) is state
    assert str(state) == state.value


@pytest.mark.parametrize("text", ["", "ESTAB-LISHED", "half-open", "SYN"])
def test_parse_names_the_known_states_on_error(text: str) -> None:
    with pytest.raises(ValueError, match="known: LISTEN, SYN_SENT"):
        TcpState.parse(text)

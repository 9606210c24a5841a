"""The eleven TCP states of RFC 9293, the kernel's numbering, and the transition diagram as data.

Rules of this file, in the manner of h11's ``_state.py``:

* ``TcpState`` is the RFC's vocabulary. The kernel numbers its states differently
  (``include/net/tcp_states.h``) and has three more that are not protocol states:
  ``TCP_NEW_SYN_RECV`` (a request socket: the RFC's SYN-RECEIVED), ``TCP_CLOSE`` (CLOSED)
  and ``TCP_BOUND_INACTIVE`` (a bound socket that never listened: CLOSED). ``from_kernel``
  folds them.
* ``TRANSITIONS`` is the whole diagram: one row per arrow, with the event that moves it.
  Nothing else in tcplab decides which moves are legal.
* A polled observer can miss short states (FIN_WAIT2 can last microseconds, see C05), so a
  path is checked either strictly (every step one arrow: a trace of the kernel's own
  transitions) or loosely (every step reachable: a series of snapshots).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise


class TcpState(enum.Enum):
    """A state of RFC 9293 section 3.3.2; the value is the name ``ss`` and netstat print."""

    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECV = "SYN_RECV"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT1 = "FIN_WAIT1"
    FIN_WAIT2 = "FIN_WAIT2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"
    CLOSED = "CLOSED"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> TcpState:
        """Accept the spellings people type: ``close-wait``, ``CLOSE_WAIT``, ``syn-recv``."""
        key = text.strip().upper().replace("-", "_")
        aliases = {"SYN_RECEIVED": "SYN_RECV", "FIN_WAIT_1": "FIN_WAIT1", "FIN_WAIT_2": "FIN_WAIT2",
                   "CLOSE": "CLOSED", "TIMEWAIT": "TIME_WAIT", "TIME_WAIT2": "TIME_WAIT"}
        key = aliases.get(key, key)
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown TCP state {text!r}; known: {names}") from None


#: include/net/tcp_states.h, as the kernel numbers its states (sock_diag, /proc/net/tcp, tracepoints).
KERNEL_STATE_NUMBERS: dict[int, TcpState] = {
    1: TcpState.ESTABLISHED,
    2: TcpState.SYN_SENT,
    3: TcpState.SYN_RECV,
    4: TcpState.FIN_WAIT1,
    5: TcpState.FIN_WAIT2,
    6: TcpState.TIME_WAIT,
    7: TcpState.CLOSED,  # TCP_CLOSE
    8: TcpState.CLOSE_WAIT,
    9: TcpState.LAST_ACK,
    10: TcpState.LISTEN,
    11: TcpState.CLOSING,
    12: TcpState.SYN_RECV,  # TCP_NEW_SYN_RECV: a request socket, not yet a full socket
    13: TcpState.CLOSED,  # TCP_BOUND_INACTIVE (6.x): bound, never listened
}

#: The kernel's number for each RFC state (the first one, where two kernel states fold into one).
KERNEL_NUMBER: dict[TcpState, int] = {}
for _number, _state in sorted(KERNEL_STATE_NUMBERS.items()):
    KERNEL_NUMBER.setdefault(_state, _number)

#: A sock_diag state mask with every state, request sockets included.
ALL_KERNEL_STATES_MASK = sum(1 << n for n in KERNEL_STATE_NUMBERS)

#: The mask for "every socket" in a dump: all but TCP_BOUND_INACTIVE (13), a bound socket
#: that never listened nor connected — no connection at all. Asking for it makes the kernel
#: walk the bind hash as well (one more table walk per family), and ``ss`` leaves it out too.
CONNECTION_STATES_MASK = ALL_KERNEL_STATES_MASK & ~(1 << 13)


def from_kernel(number: int) -> TcpState:
    """Map the kernel's state number to the RFC state; an unknown number is a kernel we don't know."""
    try:
        return KERNEL_STATE_NUMBERS[number]
    except KeyError:
        raise ValueError(f"kernel reported TCP state number {number}, unknown to tcplab") from None


def kernel_mask(states: Iterable[TcpState]) -> int:
    """The sock_diag ``idiag_states`` bit mask selecting these RFC states (folded ones included)."""
    wanted = set(states)
    return sum(1 << n for n, s in KERNEL_STATE_NUMBERS.items() if s in wanted)


@dataclass(frozen=True)
class Transition:
    """One arrow of the diagram: in ``source``, ``event`` happens and the end moves to ``target``."""

    source: TcpState
    event: str
    target: TcpState


_S = TcpState
#: RFC 9293 figure 5, plus the arrows its text adds (FIN and ACK together in FIN_WAIT1, RST).
TRANSITIONS: tuple[Transition, ...] = (
    Transition(_S.CLOSED, "passive open (listen)", _S.LISTEN),
    Transition(_S.CLOSED, "active open: send SYN", _S.SYN_SENT),
    Transition(_S.LISTEN, "receive SYN: send SYN,ACK", _S.SYN_RECV),
    Transition(_S.LISTEN, "send: send SYN", _S.SYN_SENT),
    Transition(_S.LISTEN, "close", _S.CLOSED),
    Transition(_S.SYN_SENT, "receive SYN,ACK: send ACK", _S.ESTABLISHED),
    Transition(_S.SYN_SENT, "receive SYN (simultaneous open): send SYN,ACK", _S.SYN_RECV),
    Transition(_S.SYN_SENT, "close, timeout or RST", _S.CLOSED),
    Transition(_S.SYN_RECV, "receive ACK of SYN", _S.ESTABLISHED),
    Transition(_S.SYN_RECV, "close: send FIN", _S.FIN_WAIT1),
    Transition(_S.SYN_RECV, "receive RST (passive open)", _S.LISTEN),
    Transition(_S.SYN_RECV, "receive RST or timeout", _S.CLOSED),
    Transition(_S.ESTABLISHED, "close: send FIN", _S.FIN_WAIT1),
    Transition(_S.ESTABLISHED, "receive FIN: send ACK", _S.CLOSE_WAIT),
    Transition(_S.ESTABLISHED, "abort or receive RST", _S.CLOSED),
    Transition(_S.FIN_WAIT1, "receive ACK of FIN", _S.FIN_WAIT2),
    Transition(_S.FIN_WAIT1, "receive FIN: send ACK", _S.CLOSING),
    Transition(_S.FIN_WAIT1, "receive FIN and ACK of FIN together: send ACK", _S.TIME_WAIT),
    Transition(_S.FIN_WAIT1, "abort, receive RST or retransmission timeout", _S.CLOSED),
    Transition(_S.FIN_WAIT2, "receive FIN: send ACK", _S.TIME_WAIT),
    Transition(_S.FIN_WAIT2, "abort, receive RST or FIN_WAIT2 timeout (orphan)", _S.CLOSED),
    Transition(_S.CLOSE_WAIT, "close: send FIN", _S.LAST_ACK),
    Transition(_S.CLOSE_WAIT, "abort or receive RST", _S.CLOSED),
    Transition(_S.CLOSING, "receive ACK of FIN", _S.TIME_WAIT),
    Transition(_S.CLOSING, "abort or receive RST", _S.CLOSED),
    Transition(_S.LAST_ACK, "receive ACK of FIN", _S.CLOSED),
    Transition(_S.LAST_ACK, "receive RST or retransmission timeout", _S.CLOSED),
    Transition(_S.TIME_WAIT, "timeout 2*MSL (TCP_TIMEWAIT_LEN on Linux)", _S.CLOSED),
)


class IllegalPath(ValueError):
    """An observed sequence of states that the diagram does not allow."""


def next_states(state: TcpState) -> frozenset[TcpState]:
    """The states one arrow away from ``state``."""
    return frozenset(t.target for t in TRANSITIONS if t.source is state)


@cache
def reachable(source: TcpState, target: TcpState) -> bool:
    """True if ``target`` can follow ``source`` through one or more arrows.

    The walk does not go on through CLOSED: a socket that reached CLOSED is finished, and
    the arrows out of CLOSED (listen, connect) start a new socket's life. Walking through it
    would make every state reachable from every other one, so that no series of snapshots
    could ever be illegal. CLOSED as the ``source`` itself does lead on (a fresh socket).
    """
    seen: set[TcpState] = set()
    frontier = [source]
    while frontier:
        for nxt in next_states(frontier.pop()):
            if nxt is target:
                return True
            if nxt not in seen and nxt is not TcpState.CLOSED:
                seen.add(nxt)
                frontier.append(nxt)
    return False


def check_path(path: Sequence[TcpState], *, strict: bool) -> None:
    """Raise ``IllegalPath`` unless ``path`` is a walk of the diagram.

    ``strict``: each consecutive pair must be one arrow (a trace of every transition).
    Otherwise each pair must be reachable, since a snapshot can miss states in between.
    Repeated states (the same state seen twice in a row) are allowed either way.
    """
    for before, after in pairwise(path):
        if before is after:
            continue
        ok = after in next_states(before) if strict else reachable(before, after)
        if not ok:
            how = "no arrow" if strict else "no path"
            steps = " -> ".join(str(s) for s in path)
            raise IllegalPath(f"{how} from {before} to {after} in RFC 9293's diagram: {steps}")

"""What the kernel reports about one TCP socket, independent of how it was read."""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass, field
from typing import Any, Protocol

from tcplab.states import TcpState


class _Named(Protocol):
    """A stdlib or trio socket: what ``FourTuple.of`` needs of one."""

    def getsockname(self) -> Any: ...

    def getpeername(self) -> Any: ...


def canonical_host(text: str) -> str:
    """An IP address as ``inet_ntop`` writes it: the text of every record sock_diag and
    /proc give (tcplab's, psutil's and ``ss``'s alike).

    ``ipaddress`` writes some addresses otherwise: on Python 3.11 and 3.12 the v4-mapped
    ``::ffff:127.0.0.1`` (the server side of a dual-stack ``[::]`` listener) comes out as
    ``::ffff:7f00:1``, and an ``Address`` made from it never equals the kernel's record of
    the same socket. A scope (``%lo``) is dropped: the kernel's records carry none.
    """
    host = text.split("%", 1)[0]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, host))
    except OSError:
        raise ValueError(f"{text!r} is not an IP address") from None


@dataclass(frozen=True, order=True)
class Address:
    """An IP address and port, as the kernel reports it (no scope id: loopback needs none)."""

    host: str
    port: int

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    @classmethod
    def of(cls, sockaddr: tuple[Any, ...]) -> Address:
        """From a Python socket address (``getsockname()``), IPv4 or IPv6, its host written
        as the kernel's records write it (``canonical_host``), so that the two compare equal."""
        return cls(canonical_host(str(sockaddr[0])), int(sockaddr[1]))

    @classmethod
    def wildcard(cls, family: int) -> Address:
        """``0.0.0.0:0`` or ``[::]:0``: the peer sock_diag and /proc report for a socket that
        has none (a listener, a socket never connected)."""
        return cls("::" if family == socket.AF_INET6 else "0.0.0.0", 0)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, order=True)
class FourTuple:
    """One end of a connection: its own address, then its peer's."""

    local: Address
    remote: Address

    @property
    def family(self) -> int:
        return self.local.family

    @classmethod
    def of(cls, sock: _Named) -> FourTuple:
        """A connected socket's four-tuple, seen from its own end (OSError if it has no peer)."""
        return cls(Address.of(sock.getsockname()), Address.of(sock.getpeername()))

    def reversed(self) -> FourTuple:
        """The same connection seen from the other end."""
        return FourTuple(self.remote, self.local)

    def __str__(self) -> str:
        return f"{self.local} -> {self.remote}"


class TimerKind(enum.Enum):
    """``idiag_timer`` of sock_diag, named as ``ss -o`` names it."""

    OFF = "off"
    RETRANSMIT = "on"  # retransmission, early retransmit, tail loss probe
    KEEPALIVE = "keepalive"  # also the FIN_WAIT2 timer of an orphan, and SYN_SENT/SYN_RECV
    TIMEWAIT = "timewait"
    PERSIST = "persist"  # zero-window probe

    @classmethod
    def from_kernel(cls, number: int) -> TimerKind:
        return _TIMER_NUMBERS.get(number, cls.OFF)


_TIMER_NUMBERS = {
    0: TimerKind.OFF,
    1: TimerKind.RETRANSMIT,
    2: TimerKind.KEEPALIVE,
    3: TimerKind.TIMEWAIT,
    4: TimerKind.PERSIST,
}


@dataclass(frozen=True)
class Timer:
    """A pending kernel timer: which one, seconds left, and how many times it fired (retrans)."""

    kind: TimerKind
    remaining: float
    fired: int = 0

    def __str__(self) -> str:
        return f"{self.kind.value},{self.remaining:.3f}s,{self.fired}"


@dataclass(frozen=True)
class Owner:
    """A process that holds the socket through a file descriptor."""

    pid: int
    fd: int
    name: str = ""


@dataclass(frozen=True)
class SocketRecord:
    """One socket in the kernel's tables (or held only by an fd, see ``fd_only``).

    ``inode`` is 0 for TIME_WAIT and request sockets: they belong to no process.
    ``recv_q``/``send_q`` mean what ``ss`` prints: for a listener, the accept queue's
    length and its limit; otherwise bytes not yet read by the application and bytes not
    yet acknowledged by the peer.
    ``fd_only`` marks a socket that the kernel has dropped from its tables (typically after
    a reset) while a process still holds its file descriptor: the state is CLOSED but the
    socket is not gone.
    """

    state: TcpState
    four_tuple: FourTuple
    inode: int = 0
    uid: int = 0
    timer: Timer = Timer(TimerKind.OFF, 0.0)
    recv_q: int = 0
    send_q: int = 0
    owners: tuple[Owner, ...] = field(default=(), compare=False)
    fd_only: bool = False

    @property
    def family(self) -> int:
        return self.four_tuple.family

    def to_json(self) -> dict[str, Any]:
        """A plain dict for results files."""
        return {
            "state": self.state.value,
            "local": str(self.four_tuple.local),
            "remote": str(self.four_tuple.remote),
            "inode": self.inode,
            "uid": self.uid,
            "timer": {"kind": self.timer.kind.value, "remaining_s": round(self.timer.remaining, 3),
                      "fired": self.timer.fired},
            "recv_q": self.recv_q,
            "send_q": self.send_q,
            "owners": [{"pid": o.pid, "fd": o.fd, "name": o.name} for o in self.owners],
            "fd_only": self.fd_only,
        }

    def describe(self) -> str:
        """One line, close to what ``ss -tanoi`` prints."""
        parts = [f"{self.state.value:<11}", str(self.four_tuple), f"q={self.recv_q}/{self.send_q}"]
        if self.timer.kind is not TimerKind.OFF:
            parts.append(f"timer:({self.timer})")
        if self.owners:
            parts.append("owners:" + ",".join(f"{o.name or '?'}/{o.pid}/fd{o.fd}" for o in self.owners))
        if self.fd_only:
            parts.append("(dropped by the kernel, fd still open)")
        return " ".join(parts)

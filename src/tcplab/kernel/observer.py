"""One interface to read the kernel's TCP tables, with interchangeable backends.

``DiagObserver`` (netlink sock_diag) is the primary one: exact four-tuple lookups and
in-kernel filters. ``PsutilObserver`` reads the same tables through psutil
(``/proc/net/tcp*`` and every ``/proc/*/fd``): slower, but independent, so tests cross-check
the two (and ``ss``, a third reader) on the same sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from tcplab.kernel.diag import SockDiag, Tally
from tcplab.kernel.model import FourTuple, SocketRecord
from tcplab.kernel.procfs import psutil_records
from tcplab.states import TcpState


class Observer(Protocol):
    """Reads what the kernel holds, in the network namespace where it was created."""

    name: str

    def lookup(self, end: FourTuple, *, interface: int = 0) -> SocketRecord | None:
        """The socket with exactly this four-tuple, or None; ``interface``: the index of the
        device it is bound to, if any (``procfs.bound_interface``)."""
        ...

    def snapshot(
        self, *, port: int | None = None, states: Iterable[TcpState] | None = None,
        bound: bool = False,
    ) -> list[SocketRecord]:
        """Every TCP socket with ``port`` at either end, in ``states``; None means all.

        Sockets only bound (never listened nor connected) come only with ``bound``, whatever
        ``states`` asks: a view filtered by state is a subset of the unfiltered one.
        """
        ...

    def close(self) -> None: ...


class DiagObserver:
    """sock_diag: fast, exact, filtered in the kernel (owners: ``procfs.with_owners``)."""

    name = "sock_diag"

    def __init__(self) -> None:
        self._diag = SockDiag()

    def lookup(self, end: FourTuple, *, interface: int = 0) -> SocketRecord | None:
        return self._diag.lookup(end, interface=interface)

    def snapshot(
        self, *, port: int | None = None, states: Iterable[TcpState] | None = None,
        bound: bool = False,
    ) -> list[SocketRecord]:
        return self._diag.dump(port=port, states=states, bound=bound)

    def census(
        self, *, port: int | None = None, states: Iterable[TcpState] | None = None,
        bound: bool = False,
    ) -> list[tuple[TcpState, int]]:
        """The sockets ``snapshot`` would give, each as its state and inode only: a count of
        tens of thousands of sockets without building their records (``tcplab watch``)."""
        return self._diag.census(port=port, states=states, bound=bound)

    def tally(
        self, *, port: int | None = None, states: Iterable[TcpState] | None = None,
        bound: bool = False,
    ) -> Tally:
        """The sockets ``snapshot`` would give, counted (``SockDiag.tally``): those nobody
        holds per state, the others as state and inode (``tcplab watch``)."""
        return self._diag.tally(port=port, states=states, bound=bound)

    def close(self) -> None:
        self._diag.close()

    def __enter__(self) -> DiagObserver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PsutilObserver:
    """psutil.net_connections: the whole table every call; owners included.

    ``/proc/net/tcp*`` lists every socket whatever its device (``interface`` is not needed)
    and never a socket that is only bound (``bound`` cannot add them).
    """

    name = "psutil"

    def lookup(self, end: FourTuple, *, interface: int = 0) -> SocketRecord | None:
        return next((r for r in psutil_records() if r.four_tuple == end), None)

    def snapshot(
        self, *, port: int | None = None, states: Iterable[TcpState] | None = None,
        bound: bool = False,
    ) -> list[SocketRecord]:
        wanted = set(states) if states is not None else None
        return [
            r
            for r in psutil_records()
            if (port is None or port in (r.four_tuple.local.port, r.four_tuple.remote.port))
            and (wanted is None or r.state in wanted)
        ]

    def close(self) -> None:
        pass

"""Counting sockets per state and per owning process, fast enough to refresh every second.

What ``netstat -n | awk '{++S[$NF]}'`` plus ``lsof -i`` tell a person chasing CLOSE_WAIT
(claim C40, seeds 002, 003, 004), in one reading:

* one observer census (a sock_diag dump per address family), filtered in the kernel by
  state (a bit mask) and port (inet_diag bytecode), so only matching sockets cross into
  Python, and each read as its state and inode only (no record is built);
* one scan of ``/proc/*/fd`` (or ``/proc/PID/fd`` with a pid filter; ``procfs.socket_fds``)
  to map socket inodes to processes, skipped when no matching socket has an owner to find
  (TIME_WAIT, orphans and request sockets have inode 0);
* command lines read only for the processes that own a matching socket.

A socket held by several processes (after fork) counts once per state, and once under
each process that holds it, as ``ss -p`` and ``lsof`` list it under each.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcplab import table
from tcplab.errors import UsageError
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.procfs import FdMemory, Holders
from tcplab.states import TcpState

#: The order states are shown in: roughly the life of a connection, the order in which
#: ``TcpState`` declares them.
STATE_ORDER: tuple[TcpState, ...] = tuple(TcpState)
SHORT = {
    TcpState.LISTEN: "LISTEN", TcpState.SYN_SENT: "SYN-S", TcpState.SYN_RECV: "SYN-R",
    TcpState.ESTABLISHED: "ESTAB", TcpState.FIN_WAIT1: "FW1", TcpState.FIN_WAIT2: "FW2",
    TcpState.CLOSE_WAIT: "CLOSE_WAIT", TcpState.CLOSING: "CLOSING", TcpState.LAST_ACK: "LAST_ACK",
    TcpState.TIME_WAIT: "TIME_WAIT", TcpState.CLOSED: "CLOSED",
}
NO_OWNER = "no owner (TIME_WAIT, orphans, requests)"
NOT_FOUND = "owner not visible"
TOP_OWNERS = 20


@dataclass(frozen=True)
class WatchFilter:
    """Which sockets to count: ``port`` at either end, owned by ``pid``, in ``states``."""

    port: int | None = None
    pid: int | None = None
    states: frozenset[TcpState] | None = None

    @classmethod
    def parse(
        cls, *, port: int | None, pid: int | None, states: Sequence[str] | None
    ) -> WatchFilter:
        """Validate what a person typed; each mistake is one ``UsageError`` line (exit 2)."""
        if port is not None and not 1 <= port <= 65535:
            raise UsageError(f"--port {port} is not a TCP port (1-65535)")
        if pid is not None and (pid < 1 or not os.path.isdir(f"/proc/{pid}")):
            raise UsageError(f"--pid {pid}: no such process")
        wanted: set[TcpState] | None = None
        if states:
            wanted = set()
            for text in states:
                for name in text.split(","):
                    try:
                        wanted.add(TcpState.parse(name))
                    except ValueError as exc:
                        raise UsageError(f"--state: {exc}") from None
        return cls(port, pid, frozenset(wanted) if wanted is not None else None)

    def describe(self) -> str:
        parts = []
        if self.port is not None:
            parts.append(f"port {self.port}")
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.states is not None:
            parts.append("state " + ",".join(s.value for s in STATE_ORDER if s in self.states))
        return ", ".join(parts) or "all TCP sockets"

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "pid": self.pid,
                "states": None if self.states is None else
                [s.value for s in STATE_ORDER if s in self.states]}


@dataclass(frozen=True, order=True)
class Process:
    """An owning process: its pid and command line (``[comm]`` when it has none)."""

    pid: int
    command: str


@dataclass
class Snapshot:
    """One refresh: counts per state, per owning process, and of sockets nobody owns."""

    taken: float
    filter: WatchFilter
    states: Counter[TcpState] = field(default_factory=Counter)
    owners: dict[Process, Counter[TcpState]] = field(default_factory=dict)
    #: TIME_WAIT, orphans (closed by their process, still finishing) and request sockets.
    no_owner: Counter[TcpState] = field(default_factory=Counter)
    #: sockets with an inode whose fd no visible process holds (another user, a race).
    not_found: Counter[TcpState] = field(default_factory=Counter)
    elapsed: float = 0.0
    scanned_fds: bool = False
    #: the inodes of each process's sockets in the states ``take`` was asked to ``keep``
    #: (``tcplab export`` dates CLOSE_WAIT sockets by when it first saw each one).
    kept: dict[Process, list[int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.states.values())

    def close_wait_growth(self, previous: Snapshot | None) -> int | None:
        """CLOSE_WAIT sockets now minus at the previous refresh (None for the first one)."""
        if previous is None:
            return None
        return self.states[TcpState.CLOSE_WAIT] - previous.states[TcpState.CLOSE_WAIT]

    def to_json(self, previous: Snapshot | None = None) -> dict[str, Any]:
        def counts(counter: Mapping[TcpState, int]) -> dict[str, int]:
            return {s.value: counter[s] for s in STATE_ORDER if counter.get(s)}

        return {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.taken)),
            "filter": self.filter.to_json(),
            "total": self.total,
            "states": {s.value: self.states[s] for s in STATE_ORDER
                       if self.filter.states is None or s in self.filter.states},
            "owners": [
                {"pid": p.pid, "command": p.command, "total": sum(c.values()), "states": counts(c)}
                for p, c in self.sorted_owners()
            ],
            "no_owner": {"total": sum(self.no_owner.values()), "states": counts(self.no_owner)},
            "owner_not_visible": {"total": sum(self.not_found.values()),
                                  "states": counts(self.not_found)},
            "close_wait_growth": self.close_wait_growth(previous),
            "elapsed_ms": round(self.elapsed * 1000, 3),
        }

    def sorted_owners(self) -> list[tuple[Process, Counter[TcpState]]]:
        """Owners with the most CLOSE_WAIT first, then the most sockets."""
        def rank(item: tuple[Process, Counter[TcpState]]) -> tuple[int, int, Process]:
            return (-item[1][TcpState.CLOSE_WAIT], -sum(item[1].values()), item[0])

        return sorted(self.owners.items(), key=rank)


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return "?"
    if raw:
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    try:  # a kernel thread, or a zombie: no command line, only its name
        with open(f"/proc/{pid}/comm") as f:
            return f"[{f.read().strip()}]"
    except OSError:
        return "?"


def take(observer: DiagObserver | SockDiag, watch: WatchFilter,
         keep: frozenset[TcpState] = frozenset(), memory: FdMemory | None = None) -> Snapshot:
    """One snapshot of the sockets ``watch`` selects (see the module docstring).

    ``observer`` is the lab's or a ``DiagObserver`` of its own; a bare ``SockDiag`` is still
    taken for scenarios written before the observer (it offers the same ``tally``).
    The inodes of owned sockets in a state of ``keep`` are listed per process (``kept``).
    ``memory``: the fds of processes read by earlier snapshots, reused where the process
    provably did not change them (``procfs.FdMemory``); without it every fd is read.
    """
    started = time.perf_counter()
    snap = Snapshot(time.time(), watch)
    tally = observer.tally(states=watch.states, port=watch.port)
    if watch.pid is None:  # sockets nobody holds: counted in bulk by the tally
        snap.states.update(tally.unowned)
        snap.no_owner.update(tally.unowned)
    if tally.owned:
        fresh = memory is None
        memory = FdMemory() if memory is None else memory
        try:
            holders = memory.holders([watch.pid] if watch.pid is not None else None,
                                     since=time.monotonic())
        finally:
            if fresh:
                memory.close()
        snap.scanned_fds = True
        _attribute(snap, tally.owned, holders, keep)
    snap.elapsed = time.perf_counter() - started
    return snap


def _attribute(snap: Snapshot, owned: Mapping[TcpState, list[int]], holders: Holders,
               keep: frozenset[TcpState]) -> None:
    """Count each owned socket under each process holding it, a state at a time, in bulk:
    ``map`` looks every inode's holder up and ``Counter`` counts per holder, both in C; only
    the few inodes held by several processes are then moved by hand."""
    whose = holders.owner.get
    shared = holders.shared
    by_pid: dict[int | None, Counter[TcpState]] = {}
    kept: dict[int, list[int]] = {}
    for state, inodes in owned.items():
        counted = Counter(map(whose, inodes))
        if shared:
            for inode in shared.keys() & set(inodes):  # counted once, under owner[inode]
                counted[whose(inode)] -= 1
                for holder in shared[inode]:
                    counted[holder] += 1
        for who, n in counted.items():
            if n:
                by_pid.setdefault(who, Counter())[state] = n
        if state in keep:
            for inode in inodes:
                for holder in holders.of(inode):
                    kept.setdefault(holder, []).append(inode)
    lost = by_pid.pop(None, Counter())  # no visible process holds them
    held = Counter({state: len(inodes) for state, inodes in owned.items()}) - lost
    if snap.filter.pid is None:
        snap.states.update(held + lost)
        snap.not_found.update(lost)
    else:
        snap.states.update(held)
    for who, counts in by_pid.items():
        if who is None:
            continue
        process = Process(who, _command_line(who))
        snap.owners[process] = counts
        if who in kept:
            snap.kept[process] = kept[who]


# -- rendering --------------------------------------------------------------------


def _delta(now: int, before: int | None) -> str:
    if before is None or now == before:
        return ""
    return f"{now - before:+d}"


def render(snap: Snapshot, previous: Snapshot | None, *, interval: float | None = None,
           color: bool = False) -> str:
    """The text block of one refresh: states, then owners; CLOSE_WAIT growth marked."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.taken))
    every = f", every {interval:g} s" if interval else ""
    lines = [f"tcplab watch  {stamp}  {snap.filter.describe()}{every}  "
             f"({table.plural(snap.total, 'socket')}, read in {snap.elapsed * 1000:.1f} ms)", ""]

    def mark(text: str) -> str:
        return f"\x1b[1;31m{text}\x1b[0m" if color else text

    shown = [s for s in STATE_ORDER if snap.states[s] or (previous and previous.states[s])]
    rows: list[list[object]] = []
    growth = snap.close_wait_growth(previous) or 0
    for state in shown:
        before = previous.states[state] if previous else None
        flag = "  <-" if state is TcpState.CLOSE_WAIT and growth > 0 else ""
        rows.append([state.value, snap.states[state], _delta(snap.states[state], before) + flag])
    rows.append(["total", snap.total, _delta(snap.total, previous.total if previous else None)])
    lines.append(table.render(("state", "sockets", "change"), rows))
    if growth > 0:
        lines.append(mark(f"CLOSE_WAIT grew by {growth} since the last refresh: some process "
                          "is not closing sockets its peers closed"))

    columns = [s for s in STATE_ORDER if snap.states[s]]
    if columns:
        lines.append("")
        before_owner = previous.owners if previous else {}
        owner_rows: list[list[object]] = []
        ranked = snap.sorted_owners()
        for process, counts in ranked[:TOP_OWNERS]:
            command = process.command
            if len(command) > 60:
                command = command[:57] + "..."
            row: list[object] = [process.pid, command]
            for state in columns:
                cell = str(counts[state] or "")
                if state is TcpState.CLOSE_WAIT and previous is not None:
                    grew = counts[state] - before_owner.get(process, Counter())[state]
                    if grew > 0:
                        cell += f" (+{grew})"
                row.append(cell)
            owner_rows.append(row)
        for label, counter in ((NO_OWNER, snap.no_owner), (NOT_FOUND, snap.not_found)):
            if sum(counter.values()):
                owner_rows.append(["-", label, *[counter[s] or "" for s in columns]])
        lines.append(table.render(("pid", "command", *[SHORT[s] for s in columns]), owner_rows))
        if len(ranked) > TOP_OWNERS:
            more = len(ranked) - TOP_OWNERS
            lines.append(f"... and {more} more processes (--json lists them all)")
    return "\n".join(lines)

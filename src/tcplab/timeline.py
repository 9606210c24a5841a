"""What each end of a connection was seen doing, over time.

Every observation of an end goes through a ``Timeline``; it keeps only changes (a new state,
a new timer kind, appearing or vanishing), so a two-second hold polled every 10 ms is one
line, not two hundred. Expectations print it when they fail, results files carry it as
evidence, and later parts (trace events, segments) merge into the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tcplab.kernel.model import SocketRecord
from tcplab.states import TcpState


@dataclass(frozen=True)
class Entry:
    """At ``t`` seconds since the lab started, ``end`` was seen as ``record`` (None: gone)."""

    t: float
    end: str
    record: SocketRecord | None
    source: str = "snapshot"

    @property
    def state(self) -> TcpState | None:
        return self.record.state if self.record else None

    def describe(self) -> str:
        what = self.record.describe() if self.record else "gone (no socket in the kernel's tables)"
        return f"+{self.t:8.3f}s {self.end:<8} {what}"

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "end": self.end, "source": self.source,
                "socket": self.record.to_json() if self.record else None}


def _signature(record: SocketRecord | None) -> tuple[object, ...]:
    if record is None:
        return (None,)
    return (record.state, record.timer.kind, record.fd_only)


class Timeline:
    """The changes seen on the ends of one connection (or any set of named ends)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._last: dict[str, tuple[object, ...]] = {}

    def add(self, t: float, end: str, record: SocketRecord | None, source: str = "snapshot") -> None:
        signature = _signature(record)
        if self._last.get(end) == signature:
            return
        self._last[end] = signature
        self.entries.append(Entry(t, end, record, source))

    def path(self, end: str) -> list[TcpState | None]:
        """The states ``end`` went through, in order, None for gone."""
        out: list[TcpState | None] = []
        for entry in self.entries:
            if entry.end == end and (not out or out[-1] is not entry.state):
                out.append(entry.state)
        return out

    def saw(self, end: str, *states: TcpState | None) -> bool:
        """True if ``end`` went through ``states`` in this order (others may come between)."""
        remaining = list(states)
        for state in self.path(end):
            if remaining and state is remaining[0]:
                remaining.pop(0)
        return not remaining

    def render(self) -> str:
        return "\n".join(e.describe() for e in self.entries) or "(nothing observed)"

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]

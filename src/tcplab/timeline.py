"""What each end of a connection was seen doing, over time.

Every observation of an end goes through a ``Timeline``; it keeps only changes (a new state,
a new timer kind, appearing or vanishing), so a two-second hold polled every 10 ms is one
line, not two hundred. Expectations print it when they fail, results files carry it as
evidence, and later parts (trace events, segments) merge into the same list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Event:
    """Something the kernel itself reported about ``end`` at ``t`` (lab seconds).

    ``source`` is ``trace`` (a tracepoint) or ``capture`` (a segment on loopback; ``end``
    is its sender). ``kind`` is ``state`` (with ``old``/``new``), ``reset-sent``,
    ``reset-received``, ``retransmit``, ``retransmit-synack`` or ``segment``; ``text`` says
    it in one line; ``data`` holds the figures (flags, relative seq/ack, payload length).
    """

    t: float
    end: str
    source: str
    kind: str
    text: str
    old: TcpState | None = None
    new: TcpState | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        return f"+{self.t:8.4f}s {self.end:<8} [{self.source}] {self.text}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 6), "end": self.end, "source": self.source,
                               "kind": self.kind, "text": self.text}
        if self.kind == "state":
            out["old"] = self.old.value if self.old else None
            out["new"] = self.new.value if self.new else None
        out.update(self.data)
        return out


@dataclass(frozen=True)
class Dwell:
    """How long an end stayed in ``state``: from ``entered`` to ``left`` (lab seconds), as
    bcc's ``tcpstates`` gives the time spent in the state a transition leaves. ``entered`` is
    None for the state the end was in when the trace first saw it; ``left`` is None for the
    state it was last seen entering (no tracepoint marks a timewait socket's end)."""

    state: TcpState
    entered: float | None
    left: float | None

    @property
    def seconds(self) -> float | None:
        if self.entered is None or self.left is None:
            return None
        return self.left - self.entered

    def to_json(self) -> dict[str, Any]:
        seconds = self.seconds
        return {"state": self.state.value,
                "entered": None if self.entered is None else round(self.entered, 6),
                "left": None if self.left is None else round(self.left, 6),
                "ms": None if seconds is None else round(seconds * 1e3, 3)}


class Timeline:
    """The changes seen on the ends of one connection (or any set of named ends).

    ``entries`` are snapshots (sock_diag); ``events`` are what the kernel reported by itself
    (tracepoints, captured segments), filled in by a ``tcplab.recording.Recording`` when
    the run has root and tracefs. ``merged()`` interleaves both by time.
    """

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.events: list[Event] = []
        self._last: dict[str, tuple[object, ...]] = {}

    def add(
        self, t: float, end: str, record: SocketRecord | None, source: str = "snapshot",
        *, force: bool = False,
    ) -> None:
        """Record ``record`` if it differs from ``end``'s last one; ``force``: record it anyway
        (the last observation of a hold, so a reader knows how long the state lasted)."""
        signature = _signature(record)
        if self._last.get(end) == signature and not force:
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

    def add_event(self, event: Event) -> None:
        """Add a traced or captured event (kept in time order)."""
        self.events.append(event)
        if len(self.events) > 1 and self.events[-2].t > event.t:
            self.events.sort(key=lambda e: e.t)

    def merged(self) -> list[Entry | Event]:
        """Snapshots and events together, in time order (events first on a tie)."""
        items: list[Entry | Event] = [*self.events, *self.entries]
        return sorted(items, key=lambda item: (item.t, isinstance(item, Entry)))

    def traced_path(self, end: str) -> list[TcpState]:
        """The states ``end`` went through according to the kernel's own transitions.

        Every step is one ``tcp_set_state``, so the path can be checked strictly
        (``states.check_path(strict=True)``). Empty when nothing was traced.
        """
        out: list[TcpState] = []
        for event in self.events:
            if event.end != end or event.kind != "state" or event.new is None:
                continue
            if not out and event.old is not None:
                out.append(event.old)
            if not out or out[-1] is not event.new:
                out.append(event.new)
        return out

    def dwell(self, end: str) -> list[Dwell]:
        """``end``'s states from its state events (traced, or a timewait socket's substate
        change seen in the capture), each with the time the end spent in it."""
        out: list[Dwell] = []
        for event in self.events:
            if event.end != end or event.kind != "state" or event.new is None:
                continue
            if not out and event.old is not None:
                out.append(Dwell(event.old, None, None))
            if out and out[-1].state is event.new:
                continue  # the same state, now held by a timewait socket: one stay
            if out:
                out[-1] = Dwell(out[-1].state, out[-1].entered, event.t)
            out.append(Dwell(event.new, event.t, None))
        return out

    def segments(self) -> list[Event]:
        """The captured segments of this connection, in time order."""
        return [e for e in self.events if e.kind == "segment"]

    def render(self) -> str:
        if self.events:
            return "\n".join(item.describe() for item in self.merged())
        return "\n".join(e.describe() for e in self.entries) or "(nothing observed)"

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]

    def merged_json(self) -> list[dict[str, Any]]:
        """``merged()`` as plain dicts (snapshots carry ``socket``, events ``kind``)."""
        return [item.to_json() for item in self.merged()]

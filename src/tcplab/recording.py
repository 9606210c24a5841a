"""One scenario run's kernel evidence: traced transitions and captured segments, per connection.

A ``Recording`` opens a ``TransitionRecorder`` (tracefs) and a ``SegmentCapture`` (AF_PACKET)
for a ``Lab``, widens their kernel filters whenever the lab opens a port, drains both in a
small reader thread (so the kernel's buffers never fill while the scenario's trio code
runs), and files every event into the timeline of the connection it belongs to.

Without root or tracefs the run goes on with snapshots alone; ``mode`` says which evidence
the run had. The reader is a thread rather than a trio task so the scenario body keeps its
exceptions as they are (no nursery wraps them); it is joined before ``close`` returns, and
``close`` always runs, so no thread, fd or tracefs instance outlives the run.

Entering TIME_WAIT is traced as a move to CLOSE: when an end moves to CLOSE from
FIN_WAIT1, FIN_WAIT2 or CLOSING, the recording asks sock_diag (and the end's snapshots)
whether a timewait socket now holds its four-tuple, and if so files the move as TIME_WAIT.
"""

from __future__ import annotations

import select
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from tcplab.kernel.capture import CaptureUnavailable, Segment, SegmentCapture
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.model import FourTuple
from tcplab.kernel.trace import TraceEvent, TraceUnavailable, TransitionRecorder
from tcplab.states import TcpState
from tcplab.timeline import Event

if TYPE_CHECKING:
    from tcplab.lab import Connection, End, Lab

S = TcpState
#: States from which a traced move to CLOSE may really be the move to TIME_WAIT.
_TIMEWAIT_SOURCES = frozenset({S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING})
READ_INTERVAL = 0.01  # seconds the reader thread waits for the kernel between drains


class Recording:
    """Trace + capture for one lab; see the module docstring."""

    def __init__(self, lab: Lab, *, trace: bool = True, capture: bool = True) -> None:
        self.lab = lab
        self.recorder: TransitionRecorder | None = None
        self.capture: SegmentCapture | None = None
        self.missing: list[str] = []
        self.events: list[TraceEvent] = []
        self.segments: list[Segment] = []
        self._want = (trace, capture)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._diag: SockDiag | None = None
        self._timewait: dict[tuple[FourTuple, float], bool] = {}
        self.error: str = ""

    # -- life cycle --------------------------------------------------------------

    def open(self) -> Recording:
        """Open what this machine allows; never raises for a missing privilege or feature."""
        trace, capture = self._want
        if trace:
            try:
                self.recorder = TransitionRecorder().open()
            except (TraceUnavailable, OSError) as exc:
                self.missing.append(f"no trace ({exc})")
        if capture:
            try:
                self.capture = SegmentCapture().open()
            except (CaptureUnavailable, OSError) as exc:
                self.missing.append(f"no capture ({exc})")
        if self.recorder or self.capture:
            self._diag = SockDiag()
            self.lab.port_hooks.append(self.watch_port)
            self.lab.recording = self
            self._thread = threading.Thread(target=self._read_loop, name="tcplab-recording",
                                            daemon=True)
            self._thread.start()
        return self

    @property
    def mode(self) -> str:
        """Which evidence this run had, for people: 'snapshots + trace + capture', ..."""
        parts = ["snapshots"]
        if self.recorder:
            parts.append("trace")
        if self.capture:
            parts.append("capture")
        text = " + ".join(parts)
        if len(parts) == 1:
            text += " only"
        if self.missing:
            text += " (" + "; ".join(self.missing) + ")"
        return text

    @property
    def active(self) -> bool:
        return self.recorder is not None or self.capture is not None

    def close(self) -> None:
        """Drain what is left, stop the reader, remove the tracefs instance; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self._drain()
            self.sync()
        finally:
            if self.recorder is not None:
                self.recorder.close()
            if self.capture is not None:
                self.capture.close()
            if self._diag is not None:
                self._diag.close()
                self._diag = None
            if self.watch_port in self.lab.port_hooks:
                self.lab.port_hooks.remove(self.watch_port)

    def __enter__(self) -> Recording:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------

    def watch_port(self, port: int) -> None:
        with self._lock:
            if self.recorder is not None:
                self.recorder.watch_port(port)
            if self.capture is not None:
                self.capture.watch_port(port)

    def _drain(self) -> None:
        with self._lock:
            if self.recorder is not None:
                self.events.extend(self.recorder.read())
            if self.capture is not None:
                self.segments.extend(self.capture.read())

    def _read_loop(self) -> None:
        fds = [x.fileno() for x in (self.recorder, self.capture and self.capture.sock) if x]
        while not self._stop.is_set():
            try:
                select.select(fds, [], [], READ_INTERVAL)
                self._drain()
            except (OSError, ValueError) as exc:  # an fd closed under us: the run is ending
                self.error = str(exc)
                return
            time.sleep(READ_INTERVAL / 5)  # let a burst gather: fewer, larger reads

    # -- filing events into timelines ----------------------------------------------

    def sync(self) -> None:
        """Drain the kernel now and (re)file every event into its connection's timeline."""
        if not self.active:
            return
        self._drain()
        with self._lock:
            events, segments = list(self.events), list(self.segments)
        by_ports: dict[tuple[int, int], list[TraceEvent]] = defaultdict(list)
        syn_sent: dict[int, list[TraceEvent]] = defaultdict(list)
        for ev in events:
            if ev.kind == "state" and ev.sport == 0 and ev.new is S.SYN_SENT:
                syn_sent[ev.dport].append(ev)  # connect() sets SYN_SENT before picking a port
            else:
                by_ports[(ev.sport, ev.dport)].append(ev)
        seg_by_ports: dict[tuple[int, int], list[Segment]] = defaultdict(list)
        for seg in segments:
            seg_by_ports[(seg.src.port, seg.dst.port)].append(seg)
        started = time.monotonic() - self.lab.clock()
        for conn in self.lab.connections:
            timeline = conn.timeline
            timeline.events = []
            for end in conn.ends:
                key = (end.four_tuple.local.port, end.four_tuple.remote.port)
                mine = list(by_ports.get(key, []))
                if mine and mine[0].old is S.SYN_SENT:
                    earlier = [e for e in syn_sent.get(key[1], []) if e.t <= mine[0].t]
                    if earlier:
                        mine.insert(0, earlier[-1])
                for ev in mine:
                    timeline.add_event(self._trace_entry(end, ev, started))
            self._file_segments(conn, seg_by_ports, started)

    def _trace_entry(self, end: End, ev: TraceEvent, started: float) -> Event:
        t = ev.t - started
        if ev.kind != "state":
            return Event(t, end.label, "trace", ev.kind, ev.describe(),
                         data={"state": ev.state.value if ev.state else None, "detail": ev.detail})
        new, note = ev.new, ""
        if new is S.CLOSED and ev.old in _TIMEWAIT_SOURCES and self._is_timewait(end, ev, t):
            new, note = S.TIME_WAIT, " (traced as CLOSE: a timewait socket took over)"
        return Event(t, end.label, "trace", "state", f"{ev.old} -> {new}{note}", old=ev.old, new=new,
                     data={"traced_new": ev.new.value if ev.new else None})

    def _is_timewait(self, end: End, ev: TraceEvent, t: float) -> bool:
        """Did ``end``'s move to CLOSE at ``t`` leave a timewait socket behind?"""
        key = (end.four_tuple, ev.t)
        if key not in self._timewait:
            seen = any(e.end == end.label and e.state is S.TIME_WAIT and e.t >= t - 0.001
                       for e in end.timeline.entries)
            if not seen and self._diag is not None:
                record = self._diag.lookup(end.four_tuple)
                seen = record is not None and record.state is S.TIME_WAIT
            self._timewait[key] = seen
        return self._timewait[key]

    def _file_segments(self, conn: Connection,
                       by_ports: dict[tuple[int, int], list[Segment]], started: float) -> None:
        client, server = conn.client, conn.server
        flows = {
            "client": by_ports.get((client.four_tuple.local.port, client.four_tuple.remote.port), []),
            "server": by_ports.get((server.four_tuple.local.port, server.four_tuple.remote.port), []),
        }
        isn = {label: _initial_seq(segs) for label, segs in flows.items()}
        for label, segs in flows.items():
            peer = "server" if label == "client" else "client"
            for seg in segs:
                rel_seq = (seg.seq - isn[label]) % (1 << 32)
                rel_ack = (seg.ack - isn[peer]) % (1 << 32) if "ACK" in seg.flag_set else None
                text = f"{seg.flags} seq={rel_seq}" + (f" ack={rel_ack}" if rel_ack is not None else "")
                text += f" len={seg.payload}" if seg.payload else ""
                text += f" win={seg.window}"
                conn.timeline.add_event(Event(
                    seg.t - started, label, "capture", "segment", f"{label} -> {peer}: {text}",
                    data={"direction": f"{label}->{peer}", "flags": seg.flags, "seq": rel_seq,
                          "ack": rel_ack, "len": seg.payload, "win": seg.window}))


def _initial_seq(segments: list[Segment]) -> int:
    """The sender's initial sequence number: its SYN's, else its first segment's."""
    for seg in segments:
        if "SYN" in seg.flag_set:
            return seg.seq
    return segments[0].seq if segments else 0


def connection_evidence(conn: Connection) -> dict[str, Any]:
    """What a results file keeps about one connection: ends, traced paths, merged timeline."""
    timeline = conn.timeline
    segments = timeline.segments()
    return {
        "client": str(conn.client.four_tuple),
        "server": str(conn.server.four_tuple),
        "traced_path": {end.label: [s.value for s in timeline.traced_path(end.label)]
                        for end in conn.ends},
        "segments": len(segments),
        "timeline": timeline.merged_json(),
    }

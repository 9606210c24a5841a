"""One scenario run's kernel evidence: traced transitions and captured segments, per connection.

A ``Recording`` opens a ``TransitionRecorder`` (tracefs) and a ``SegmentCapture`` (AF_PACKET)
for a ``Lab``, widens their kernel filters whenever the lab opens a port, drains both in a
small reader thread (so the kernel's buffers never fill while the scenario's trio code
runs), and files every event into the timeline of the connection it belongs to.

Without root or tracefs the run goes on with snapshots alone; ``mode`` says which evidence
the run had. The reader is a thread rather than a trio task so the scenario body keeps its
exceptions as they are (no nursery wraps them); it is joined before ``close`` returns, and
``close`` always runs, so no thread, fd or tracefs instance outlives the run.

Entering a timewait socket is traced as a move to CLOSE (``tcp_time_wait`` ends in
``tcp_done``): when an end moves to CLOSE from FIN_WAIT1, FIN_WAIT2 or CLOSING, the
recording asks the end's snapshots (and sock_diag) whether a timewait socket now holds its
four-tuple. A timewait socket has a *substate*, and sock_diag reports it as the state
(``inet_twsk_diag_fill``: ``idiag_state = tw->tw_substate``, timer 3): an orphaned end in
FIN_WAIT2 is moved into one whose substate is still FIN_WAIT2 (``tcp_time_wait(sk,
TCP_FIN_WAIT2, tmo)`` in ``tcp_close``, ``tcp_rcv_state_process`` and
``tcp_keepalive_timer``, net/ipv4/tcp.c, tcp_input.c, tcp_timer.c). It turns TIME_WAIT only
when the peer's FIN reaches it (``tcp_timewait_state_process``, net/ipv4/tcp_minisocks.c);
new data instead makes it answer RST and vanish. So the move is filed under the substate:
TIME_WAIT from CLOSING, or when the peer's FIN had reached the end (the capture shows it);
FIN_WAIT2 otherwise, followed by a ``FIN_WAIT2 -> TIME_WAIT`` event at the moment the
capture shows the peer's FIN (source ``capture``: no tracepoint sees a timewait socket).
Without a capture, the substate sock_diag reported is taken as it is.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tcplab.kernel.capture import CaptureUnavailable, Segment, SegmentCapture
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.model import Address, FourTuple, TimerKind
from tcplab.kernel.trace import TraceEvent, TraceUnavailable, TransitionRecorder
from tcplab.states import TcpState
from tcplab.timeline import Event, Timeline

if TYPE_CHECKING:
    from tcplab.lab import Connection, Lab

S = TcpState
#: States from which a traced move to CLOSE may really be the move to TIME_WAIT.
_TIMEWAIT_SOURCES = frozenset({S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING})
READ_INTERVAL = 0.01  # seconds the reader thread waits for the kernel between drains
#: How much later than a traced move a captured segment may be stamped and still count as
#: having reached the end before it. On loopback a segment is captured as it leaves, and the
#: receiver processes it some 5-50 µs later; the two clocks are lined up to well under a
#: microsecond (``capture.clock_offset_ns``). An orphan that closes just before the peer's
#: FIN (the lab closing both ends at once) sees that FIN about 8 µs after its move.
FIN_SLACK = 2e-6


@dataclass
class Flow:
    """Traffic of the lab's ports outside its ``Connection``s: a client that was never
    accepted, or an adopted socket (``lanes`` then names its two ends for people)."""

    client: FourTuple
    timeline: Timeline
    lanes: dict[str, str] = field(default_factory=dict)


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
        self._timewait: dict[tuple[FourTuple, float], TcpState | None] = {}
        #: Traffic on the lab's ports that belongs to no ``Connection``.
        self.flows: list[Flow] = []
        self.error: str = ""

    # -- life cycle --------------------------------------------------------------

    def open(self) -> Recording:
        """Open what this machine allows; never raises for a missing privilege or feature.

        Interrupted half-way (Ctrl-C), it closes what it opened before the exception goes on.
        """
        try:
            return self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> Recording:
        trace, capture = self._want
        if trace:
            self.recorder = TransitionRecorder()  # set first: close() removes a half-made one
            try:
                self.recorder.open()
            except (TraceUnavailable, OSError) as exc:
                self.recorder = None
                self.missing.append(f"no trace ({exc})")
        if capture:
            self.capture = SegmentCapture()
            try:
                self.capture.open()
            except (CaptureUnavailable, OSError) as exc:
                self.capture = None
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
        # An ExitStack, so that one release failing (an instance the kernel finds busy)
        # still releases the others, whatever the drain raised.
        with contextlib.ExitStack() as release:
            if self.recorder is not None:
                release.callback(self.recorder.close)
            if self.capture is not None:
                release.callback(self.capture.close)
            if self._diag is not None:
                release.callback(self._close_diag)  # runs first (LIFO), after ``sync`` used it
            if self.watch_port in self.lab.port_hooks:
                self.lab.port_hooks.remove(self.watch_port)
            self._drain()
            self.sync()

    def _close_diag(self) -> None:
        if self._diag is not None:
            self._diag.close()
            self._diag = None

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
        """Drain the kernel now and (re)file every event into its connection's timeline.

        Traffic of sockets that are not a lab ``Connection`` (a client that was never
        accepted, a raw socket of the scenario) is filed too, into ``flows``: one timeline
        per port pair, its ``server`` the end on a port the lab listened on.
        """
        if not self.active:
            return
        self._drain()
        with self._lock:
            events, segments = list(self.events), list(self.segments)
            listening = set(self.recorder.ports if self.recorder else ())
            listening |= self.capture.ports if self.capture else set()
        by_ports: dict[tuple[int, int], list[TraceEvent]] = defaultdict(list)
        syn_sent: dict[int, list[TraceEvent]] = defaultdict(list)
        for ev in events:
            if ev.kind == "state" and ev.sport == 0 and ev.new is S.SYN_SENT:
                syn_sent[ev.dport].append(ev)  # connect() sets SYN_SENT before picking a port
            elif ev.dport != 0:  # a listener's own events (dport 0) belong to no connection
                by_ports[(ev.sport, ev.dport)].append(ev)
        seg_by_ports: dict[tuple[int, int], list[Segment]] = defaultdict(list)
        for seg in segments:
            seg_by_ports[(seg.src.port, seg.dst.port)].append(seg)
        started = time.monotonic() - self.lab.clock()
        filed: set[tuple[int, int]] = set()
        for conn in self.lab.connections:
            conn.timeline.events = []
            ends = [(e.label, e.four_tuple, e.timeline) for e in conn.ends]
            filed |= self._file(ends, by_ports, syn_sent, seg_by_ports, started)
        self.flows = []
        for end in self.lab.adopted:  # adopted alone (not by adopt_connection): its own flow
            key = (end.four_tuple.local.port, end.four_tuple.remote.port)
            if key in filed or key[::-1] in filed:
                continue
            timeline = Timeline()
            filed |= self._file([("client", end.four_tuple, timeline),
                                 ("server", end.four_tuple.reversed(), timeline)],
                                by_ports, syn_sent, seg_by_ports, started)
            self.flows.append(Flow(end.four_tuple, timeline, {"client": end.label,
                                                              "server": f"peer of {end.label}"}))
        pairs = {tuple(sorted(k)) for k in [*by_ports, *seg_by_ports]}
        for low, high in sorted(pairs):
            if (low, high) in filed or (high, low) in filed:
                continue
            server_port = high if high in listening and low not in listening else low
            client_port = high if server_port == low else low
            if server_port not in listening:
                continue
            client_ft = FourTuple(Address(self.lab.host, client_port), Address(self.lab.host, server_port))
            timeline = Timeline()
            self._file([("client", client_ft, timeline), ("server", client_ft.reversed(), timeline)],
                       by_ports, syn_sent, seg_by_ports, started)
            self.flows.append(Flow(client_ft, timeline))

    def _file(self, ends: list[tuple[str, FourTuple, Timeline]],
              by_ports: dict[tuple[int, int], list[TraceEvent]],
              syn_sent: dict[int, list[TraceEvent]],
              seg_by_ports: dict[tuple[int, int], list[Segment]], started: float) -> set[tuple[int, int]]:
        """File the events of one connection's two ends; return their (local, remote) ports."""
        keys = set()
        for label, four_tuple, timeline in ends:
            key = (four_tuple.local.port, four_tuple.remote.port)
            keys.add(key)
            mine = list(by_ports.get(key, []))
            if mine and mine[0].old is S.SYN_SENT:
                earlier = [e for e in syn_sent.get(key[1], []) if e.t <= mine[0].t]
                if earlier:
                    mine.insert(0, earlier[-1])
            peer_segments = seg_by_ports.get((key[1], key[0]), [])
            own_segments = seg_by_ports.get(key, [])
            for index in range(len(mine)):
                for event in self._trace_entries(label, four_tuple, timeline, mine, index,
                                                 (own_segments, peer_segments), started):
                    timeline.add_event(event)
        flows = {label: seg_by_ports.get((ft.local.port, ft.remote.port), []) for label, ft, _ in ends}
        self._file_segments(ends[0][2], flows, started)
        return keys

    def _trace_entries(self, label: str, four_tuple: FourTuple, timeline: Timeline,
                       mine: list[TraceEvent], index: int,
                       segments: tuple[list[Segment], list[Segment]], started: float) -> list[Event]:
        """The timeline events for ``mine[index]`` (the earlier ones bound which connection
        on this four-tuple it belongs to); ``segments``: this end's and its peer's, captured."""
        ev = mine[index]
        t = ev.t - started
        if ev.kind != "state":
            return [Event(t, label, "trace", ev.kind, ev.describe(),
                          data={"state": ev.state.value if ev.state else None, "detail": ev.detail})]
        plain = Event(t, label, "trace", "state", f"{ev.old} -> {ev.new}", old=ev.old, new=ev.new,
                      data={"traced_new": ev.new.value if ev.new else None})
        if ev.new is not S.CLOSED or ev.old not in _TIMEWAIT_SOURCES:
            return [plain]
        substate = self._timewait_substate(label, four_tuple, timeline, ev, t)
        if substate is None:
            return [plain]
        # The peer's segments of this connection: after this end's last ESTABLISHED (an
        # earlier connection on the same four-tuple is not this one's).
        since = max((e.t for e in mine[:index] if e.new is S.ESTABLISHED), default=float("-inf"))
        own, peer = ([s for s in segs if s.t > since] for segs in segments)
        fin_before = any("FIN" in s.flag_set for s in peer if s.t <= ev.t + FIN_SLACK)
        if ev.old is S.CLOSING or (self.capture is not None and fin_before):
            substate = S.TIME_WAIT
        elif self.capture is not None:
            substate = S.FIN_WAIT2
        note = (" (traced as CLOSE: a timewait socket took over)" if substate is S.TIME_WAIT else
                " (traced as CLOSE: a timewait socket took over, its substate FIN_WAIT2 until "
                "the peer's FIN arrives)")
        out = [Event(t, label, "trace", "state", f"{ev.old} -> {substate}{note}", old=ev.old,
                     new=substate, data={"traced_new": S.CLOSED.value, "timewait": substate.value})]
        if substate is S.FIN_WAIT2 and self.capture is not None:
            later = _timewait_fate(ev.t, own, peer)
            if later is not None:
                at, new, why = later
                out.append(Event(at - started, label, "capture", "state",
                                 f"FIN_WAIT2 -> {new} ({why})", old=S.FIN_WAIT2, new=new,
                                 data={"traced_new": None, "timewait": new.value}))
        return out

    def _timewait_substate(self, label: str, four_tuple: FourTuple, timeline: Timeline,
                           ev: TraceEvent, t: float) -> TcpState | None:
        """Did this end's move to CLOSE at ``t`` leave a timewait socket behind? Its substate
        as sock_diag reported it (FIN_WAIT2 or TIME_WAIT), or None if there is none."""
        key = (four_tuple, ev.t)
        if key not in self._timewait:
            seen = next((e.record.state for e in timeline.entries
                         if e.end == label and e.t >= t - 0.001 and e.record is not None
                         and e.record.timer.kind is TimerKind.TIMEWAIT), None)
            if seen is None and self._diag is not None:
                record = self._diag.lookup(four_tuple)
                if record is not None and (record.timer.kind is TimerKind.TIMEWAIT
                                           or record.state is S.TIME_WAIT):
                    seen = record.state
            self._timewait[key] = seen if seen in (S.FIN_WAIT2, S.TIME_WAIT) else None
        return self._timewait[key]

    def _file_segments(self, timeline: Timeline, flows: dict[str, list[Segment]],
                       started: float) -> None:
        isn = {label: _initial_seq(segs) for label, segs in flows.items()}
        for label, segs in flows.items():
            peer = "server" if label == "client" else "client"
            for seg in segs:
                rel_seq = (seg.seq - isn[label]) % (1 << 32)
                rel_ack = (seg.ack - isn[peer]) % (1 << 32) if "ACK" in seg.flag_set else None
                text = f"{seg.flags} seq={rel_seq}"
                text += f" ack={rel_ack}" if rel_ack is not None else ""
                text += f" len={seg.payload}" if seg.payload else ""
                text += f" win={seg.window}"
                timeline.add_event(Event(
                    seg.t - started, label, "capture", "segment", f"{label} -> {peer}: {text}",
                    data={"direction": f"{label}->{peer}", "flags": seg.flags, "seq": rel_seq,
                          "ack": rel_ack, "len": seg.payload, "win": seg.window}))


def _timewait_fate(closed: float, own: list[Segment], peer: list[Segment]) -> tuple[float, TcpState, str] | None:
    """What became of a timewait socket in substate FIN_WAIT2 made at ``closed``: the first
    segment of the peer after it that carries a FIN or data decides (tcp_timewait_state_process).
    A bare FIN moves it to TIME_WAIT; data makes it answer RST and vanish. None: neither seen."""
    for seg in peer:
        if seg.t <= closed + FIN_SLACK or not ("FIN" in seg.flag_set or seg.payload):
            continue
        if "FIN" in seg.flag_set and not seg.payload:
            return seg.t, S.TIME_WAIT, "the peer's FIN reached the timewait socket"
        rst = next((s for s in own if s.t >= seg.t and "RST" in s.flag_set), None)
        if rst is not None:
            return rst.t, S.CLOSED, "the peer sent data to the timewait socket, which answered RST"
        return None
    return None


def _initial_seq(segments: list[Segment]) -> int:
    """The sender's initial sequence number: its SYN's, else its first segment's."""
    for seg in segments:
        if "SYN" in seg.flag_set:
            return seg.seq
    return segments[0].seq if segments else 0


def connection_evidence(conn: Connection) -> dict[str, Any]:
    """What a results file keeps about one connection: ends, traced paths, each end's time in
    each traced state (``dwell``), merged timeline."""
    return flow_evidence(conn.client.four_tuple, conn.timeline)


def flow_evidence(client: FourTuple, timeline: Timeline, *, accepted: bool = True,
                  lanes: dict[str, str] | None = None) -> dict[str, Any]:
    """The same for any client four-tuple and its timeline (``accepted``: a lab Connection;
    ``lanes``: what to call the two ends, when not client and server)."""
    return {
        "client": str(client),
        "server": str(client.reversed()),
        "accepted": accepted,
        "lanes": lanes or {},
        "traced_path": {label: [s.value for s in timeline.traced_path(label)]
                        for label in ("client", "server")},
        "segments": len(timeline.segments()),
        "dwell": {label: [d.to_json() for d in timeline.dwell(label)] for label in ("client", "server")},
        "timeline": timeline.merged_json(),
    }

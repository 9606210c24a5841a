"""One scenario run's kernel evidence: traced transitions and captured segments, per connection.

A ``Recording`` opens the evidence sources a run asks for (``tcplab.sources.REGISTRY``:
snapshots, the tracefs transitions, the AF_PACKET segments; each a
``tcplab.kernel.source.Source``), subscribes to the lab (``Lab.subscribe``: it hears of
every port the lab opens and widens each source's kernel filter), drains every source in a
small reader thread (so the kernel's buffers never fill while the scenario's trio code
runs), and files each event once into the timeline of the connection it belongs to. The
lab does not know this module: it offers hooks, and the recording subscribes.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tcplab.kernel.model import Address, FourTuple, TimerKind
from tcplab.kernel.packets import Segment, SegmentCapture, TcpFlags
from tcplab.kernel.source import Source, SourceUnavailable
from tcplab.kernel.trace import TraceEvent, TransitionRecorder
from tcplab.sources import SnapshotSource, make
from tcplab.states import TcpState
from tcplab.timeline import Event, Timeline

if TYPE_CHECKING:
    from tcplab.lab import Connection, End, Lab

S = TcpState
#: States from which a traced move to CLOSE may really be the move to TIME_WAIT.
_TIMEWAIT_SOURCES = frozenset({S.FIN_WAIT1, S.FIN_WAIT2, S.CLOSING})
READ_INTERVAL = 0.01  # seconds the reader thread waits for the kernel between drains
#: How much later than a traced move a captured segment may be stamped and still count as
#: having reached the end before it. On loopback a segment is captured as it leaves, and the
#: receiver processes it some 5-50 µs later; the two clocks are lined up to well under a
#: microsecond (``packets.clock_offset_ns``). An orphan that closes just before the peer's
#: FIN (the lab closing both ends at once) sees that FIN about 8 µs after its move.
FIN_SLACK = 2e-6


@dataclass
class Flow:
    """Traffic of the lab's ports outside its ``Connection``s: a client that was never
    accepted, or an adopted socket (``lanes`` then names its two ends for people)."""

    client: FourTuple
    timeline: Timeline
    lanes: dict[str, str] = field(default_factory=dict)


@dataclass
class _Owner:
    """One end whose evidence goes into a timeline, and how much of it is filed already."""

    label: str
    four_tuple: FourTuple
    timeline: Timeline
    peer_label: str
    traced: int = 0  # how many of this end's trace events are filed
    segments: int = 0  # how many of the segments it sent are filed
    #: Timewait sockets filed in substate FIN_WAIT2 whose fate (the peer's FIN, or data and
    #: a RST) is not seen yet: the filed event, the traced move, the connection's start.
    pending: list[tuple[Event, TraceEvent, float]] = field(default_factory=list)
    #: The lab's ``End`` for this end, when it has one (a flow's server side has none).
    end: End | None = None

    @property
    def interface(self) -> int:
        """The device the end's socket is bound to (``End.interface``; 0: none or unknown),
        which an exact lookup must send to find a device-bound socket."""
        return self.end.interface if self.end is not None else 0

    @property
    def key(self) -> tuple[int, int]:
        return (self.four_tuple.local.port, self.four_tuple.remote.port)


class Recording:
    """The run's evidence sources, looped over as one; see the module docstring."""

    def __init__(self, lab: Lab, *, trace: bool = True, capture: bool = True,
                 sources: Sequence[str] | None = None) -> None:
        self.lab = lab
        wanted = list(sources) if sources is not None else [
            name for name, on in (("trace", trace), ("capture", capture)) if on]
        self._wanted = ["snapshots", *(n for n in wanted if n != "snapshots")]
        self.sources: list[Source] = []
        self.missing: list[str] = []
        self.events: list[TraceEvent] = []
        self.segments: list[Segment] = []
        self._inbox: list[object] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._timewait: dict[tuple[FourTuple, float], TcpState | None] = {}
        self._by_ports: dict[tuple[int, int], list[TraceEvent]] = defaultdict(list)
        self._syn_sent: dict[int, list[TraceEvent]] = defaultdict(list)
        self._seg_by_ports: dict[tuple[int, int], list[Segment]] = defaultdict(list)
        self._owners: list[_Owner] = []
        self._registered: set[int] = set()
        self._started = 0.0
        #: Traffic on the lab's ports that belongs to no ``Connection`` (made at ``close``).
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
        self._started = time.monotonic() - self.lab.clock()
        for name in self._wanted:
            source = make(name)
            self.sources.append(source)  # first: close() releases a half-opened one
            try:
                source.open()
            except (SourceUnavailable, OSError) as exc:
                self.sources.remove(source)
                with contextlib.suppress(OSError):
                    source.close()
                self.missing.append(f"no {name} ({exc})")
        if self.active:
            self._unsubscribe = self.lab.subscribe(self)
            self._thread = threading.Thread(target=self._read_loop, name="tcplab-recording",
                                            daemon=True)
            self._thread.start()
        return self

    def source(self, name: str) -> Source | None:
        """The open source called ``name``, or None (not asked for, or not on this machine)."""
        return next((s for s in self.sources if s.name == name), None)

    def has(self, name: str) -> bool:
        """Does this run have the evidence ``name`` ("trace", "capture", ...)?"""
        return self.source(name) is not None

    @property
    def recorder(self) -> TransitionRecorder | None:
        """The tracefs source, if the run has it (kept for scenarios that ask)."""
        found = self.source("trace")
        return found if isinstance(found, TransitionRecorder) else None

    @property
    def capture(self) -> SegmentCapture | None:
        """The packet capture source, if the run has it."""
        found = self.source("capture")
        return found if isinstance(found, SegmentCapture) else None

    @property
    def mode(self) -> str:
        """Which evidence this run had, for people: 'snapshots + trace + capture', ..."""
        parts = ["snapshots", *(s.name for s in self.sources if s.name != "snapshots")]
        text = " + ".join(parts)
        if len(parts) == 1:
            text += " only"
        if self.missing:
            text += " (" + "; ".join(self.missing) + ")"
        return text

    @property
    def active(self) -> bool:
        """Has the run a source that is waited on (beyond the snapshots every run has)?"""
        return any(s.fileno() >= 0 for s in self.sources)

    def close(self) -> None:
        """Drain what is left, stop the reader, release every source; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        # An ExitStack, so that one release failing (an instance the kernel finds busy)
        # still releases the others, whatever the drain raised; released in reverse order,
        # after ``sync`` used them (the snapshot source last).
        with contextlib.ExitStack() as release:
            for source in self.sources:
                release.callback(source.close)
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            if self.sources and not self.flows:
                self.sync()
                self._make_flows()

    def __enter__(self) -> Recording:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------

    def watch_port(self, port: int) -> None:
        """The lab opened ``port``: every source widens its filter (a lab hook)."""
        with self._lock:
            for source in self.sources:
                source.watch_port(port)

    def _drain(self) -> None:
        with self._lock:
            for source in self.sources:
                self._inbox.extend(source.read())

    def _read_loop(self) -> None:
        fds = [s.fileno() for s in self.sources if s.fileno() >= 0]
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
        """Drain the sources now and file what is new into the timelines, each event once.

        Evidence is indexed by port pair as it is taken in. Each end of a lab ``Connection``
        (and later each flow) owns its port pair, and files what it has not filed yet: so an
        event read before its connection existed (the handshake) is filed when the connection
        appears, and never twice. Only a timewait socket filed in substate FIN_WAIT2 is
        looked at again, until the capture shows what became of it.
        """
        if not self.active:
            return
        self._drain()
        with self._lock:
            new, self._inbox = self._inbox, []
        for item in sorted(new, key=lambda x: float(getattr(x, "t", 0.0))):
            self._take(item)
        for conn in self.lab.connections:
            if id(conn) not in self._registered:
                self._registered.add(id(conn))
                self._own(conn.client, conn.timeline, conn.server.label)
                self._own(conn.server, conn.timeline, conn.client.label)
        for owner in self._owners:
            self._file(owner)

    def _take(self, item: object) -> None:
        """Index one piece of evidence by the ports it belongs to."""
        if isinstance(item, TraceEvent):
            self.events.append(item)
            if item.kind == "state" and item.sport == 0 and item.new is S.SYN_SENT:
                self._syn_sent[item.dport].append(item)  # connect() sets SYN_SENT before the port
            elif item.dport != 0:  # a listener's own events (dport 0) belong to no connection
                self._by_ports[(item.sport, item.dport)].append(item)
        elif isinstance(item, Segment):
            self.segments.append(item)
            self._seg_by_ports[(item.src.port, item.dst.port)].append(item)

    def _own(self, end: End, timeline: Timeline, peer: str) -> None:
        self._owners.append(_Owner(end.label, end.four_tuple, timeline, peer, end=end))

    def _make_flows(self) -> None:
        """File the traffic no ``Connection`` took: adopted sockets (not by
        ``adopt_connection``), then any other port pair of a port the lab listened on."""
        taken = {o.key for o in self._owners} | {o.key[::-1] for o in self._owners}
        listening: set[int] = set()
        for source in self.sources:
            listening |= set(getattr(source, "ports", ()))
        for end in self.lab.adopted:
            key = (end.four_tuple.local.port, end.four_tuple.remote.port)
            if key in taken:
                continue
            flow = Flow(end.four_tuple, Timeline(), {"client": end.label,
                                                     "server": f"peer of {end.label}"})
            self._flow(flow, end)
            taken |= {key, key[::-1]}
        pairs = {tuple(sorted(k)) for k in [*self._by_ports, *self._seg_by_ports]}
        for low, high in sorted(pairs):
            if (low, high) in taken:
                continue
            server_port = high if high in listening and low not in listening else low
            client_port = high if server_port == low else low
            if server_port not in listening:
                continue
            client_ft = FourTuple(Address(self.lab.host, client_port),
                                  Address(self.lab.host, server_port))
            self._flow(Flow(client_ft, Timeline()))

    def _flow(self, flow: Flow, end: End | None = None) -> None:
        owners = [_Owner("client", flow.client, flow.timeline, "server", end=end),
                  _Owner("server", flow.client.reversed(), flow.timeline, "client")]
        for owner in owners:
            self._file(owner)
        self.flows.append(flow)

    def _file(self, owner: _Owner) -> None:
        """File what ``owner`` has not filed yet: the segments it sent, its trace events,
        and the fate of its pending timewait sockets."""
        key, peer_key = owner.key, owner.key[::-1]
        sent = self._seg_by_ports.get(key, [])
        if owner.segments < len(sent):
            own_isn = _initial_seq(sent)
            peer_isn = _initial_seq(self._seg_by_ports.get(peer_key, []))
            for seg in sent[owner.segments:]:
                owner.timeline.add_event(self._segment_event(owner, seg, own_isn, peer_isn))
            owner.segments = len(sent)
        mine = self._by_ports.get(key, [])
        if owner.traced == 0 and mine and mine[0].old is S.SYN_SENT:
            earlier = [e for e in self._syn_sent.get(key[1], []) if e.t <= mine[0].t]
            if earlier:
                mine.insert(0, earlier[-1])
        segments = (sent, self._seg_by_ports.get(peer_key, []))
        for index in range(owner.traced, len(mine)):
            for event in self._trace_entries(owner, mine, index, segments):
                owner.timeline.add_event(event)
        owner.traced = len(mine)
        if owner.pending and self.capture is not None:
            self._settle(owner, segments)

    def _segment_event(self, owner: _Owner, seg: Segment, own_isn: int, peer_isn: int) -> Event:
        label, peer = owner.label, owner.peer_label
        rel_seq = (seg.seq - own_isn) % (1 << 32)
        rel_ack = (seg.ack - peer_isn) % (1 << 32) if TcpFlags.ACK in seg.flags else None
        flags = seg.flags.text()
        text = f"{flags} seq={rel_seq}"
        text += f" ack={rel_ack}" if rel_ack is not None else ""
        text += f" len={seg.payload}" if seg.payload else ""
        text += f" win={seg.window}"
        return Event(seg.t - self._started, label, "capture", "segment",
                     f"{label} -> {peer}: {text}",
                     data={"direction": f"{label}->{peer}", "flags": flags, "seq": rel_seq,
                           "ack": rel_ack, "len": seg.payload, "win": seg.window})

    def _settle(self, owner: _Owner, segments: tuple[list[Segment], list[Segment]]) -> None:
        """Pending timewait sockets of ``owner`` whose fate the capture now shows: file it.
        A peer's FIN captured at the move itself but read only now makes the filed move a
        TIME_WAIT after all (the two sources are read apart)."""
        still = []
        for filed, ev, since in owner.pending:
            own, peer = ([s for s in segs if s.t > since] for segs in segments)
            if any(TcpFlags.FIN in s.flags for s in peer if s.t <= ev.t + FIN_SLACK):
                events = owner.timeline.events
                events[events.index(filed)] = _as_time_wait(filed, ev)
                continue
            fate = _timewait_fate(ev.t, own, peer)
            if fate is None:
                still.append((filed, ev, since))
                continue
            at, new, why = fate
            owner.timeline.add_event(Event(
                at - self._started, owner.label, "capture", "state", f"FIN_WAIT2 -> {new} ({why})",
                old=S.FIN_WAIT2, new=new, data={"traced_new": None, "timewait": new.value}))
        owner.pending = still

    def _trace_entries(self, owner: _Owner, mine: list[TraceEvent], index: int,
                       segments: tuple[list[Segment], list[Segment]]) -> list[Event]:
        """The timeline events for ``mine[index]`` (the earlier ones bound which connection
        on this four-tuple it belongs to); ``segments``: this end's and its peer's, captured."""
        ev, label = mine[index], owner.label
        t = ev.t - self._started
        if ev.kind != "state":
            return [Event(t, label, "trace", ev.kind, ev.describe(),
                          data={"state": ev.state.value if ev.state else None, "detail": ev.detail})]
        plain = Event(t, label, "trace", "state", f"{ev.old} -> {ev.new}", old=ev.old, new=ev.new,
                      data={"traced_new": ev.new.value if ev.new else None})
        if ev.new is not S.CLOSED or ev.old not in _TIMEWAIT_SOURCES:
            return [plain]
        substate = self._timewait_substate(owner, ev, t)
        if substate is None:
            return [plain]
        # The peer's segments of this connection: after this end's last ESTABLISHED (an
        # earlier connection on the same four-tuple is not this one's).
        since = max((e.t for e in mine[:index] if e.new is S.ESTABLISHED), default=float("-inf"))
        peer = [s for s in segments[1] if s.t > since]
        fin_before = any(TcpFlags.FIN in s.flags for s in peer if s.t <= ev.t + FIN_SLACK)
        if ev.old is S.CLOSING or (self.capture is not None and fin_before):
            substate = S.TIME_WAIT
        elif self.capture is not None:
            substate = S.FIN_WAIT2
        filed = _timewait_event(t, label, ev, substate)
        if substate is S.FIN_WAIT2 and self.capture is not None:
            owner.pending.append((filed, ev, since))  # its fate: ``_settle``
        return [filed]

    def _timewait_substate(self, owner: _Owner, ev: TraceEvent, t: float) -> TcpState | None:
        """Did this end's move to CLOSE at ``t`` leave a timewait socket behind? Its substate
        as sock_diag reported it (FIN_WAIT2 or TIME_WAIT), or None if there is none. Looked
        up with the end's device, as ``End.observe`` does: a timewait socket keeps the device
        its socket was bound to, and the kernel's lookup skips it when asked with none."""
        label, four_tuple, timeline = owner.label, owner.four_tuple, owner.timeline
        key = (four_tuple, ev.t)
        if key not in self._timewait:
            seen = next((e.record.state for e in timeline.entries
                         if e.end == label and e.t >= t - 0.001 and e.record is not None
                         and e.record.timer.kind is TimerKind.TIMEWAIT), None)
            snapshots = self.source("snapshots")
            if seen is None and isinstance(snapshots, SnapshotSource):
                record = snapshots.lookup(four_tuple, interface=owner.interface)
                if record is not None and (record.timer.kind is TimerKind.TIMEWAIT
                                           or record.state is S.TIME_WAIT):
                    seen = record.state
            self._timewait[key] = seen if seen in (S.FIN_WAIT2, S.TIME_WAIT) else None
        return self._timewait[key]

def _timewait_event(t: float, label: str, ev: TraceEvent, substate: TcpState) -> Event:
    """A traced move to CLOSE filed as the timewait socket's substate."""
    note = (" (traced as CLOSE: a timewait socket took over)" if substate is S.TIME_WAIT else
            " (traced as CLOSE: a timewait socket took over, its substate FIN_WAIT2 until "
            "the peer's FIN arrives)")
    return Event(t, label, "trace", "state", f"{ev.old} -> {substate}{note}", old=ev.old,
                 new=substate, data={"traced_new": S.CLOSED.value, "timewait": substate.value})


def _as_time_wait(filed: Event, ev: TraceEvent) -> Event:
    return _timewait_event(filed.t, filed.end, ev, S.TIME_WAIT)


def _timewait_fate(closed: float, own: list[Segment], peer: list[Segment]) -> tuple[float, TcpState, str] | None:
    """What became of a timewait socket in substate FIN_WAIT2 made at ``closed``: the first
    segment of the peer after it that carries a FIN or data decides (tcp_timewait_state_process).
    A bare FIN moves it to TIME_WAIT; data makes it answer RST and vanish. None: neither seen."""
    for seg in peer:
        if seg.t <= closed + FIN_SLACK or not (TcpFlags.FIN in seg.flags or seg.payload):
            continue
        if TcpFlags.FIN in seg.flags and not seg.payload:
            return seg.t, S.TIME_WAIT, "the peer's FIN reached the timewait socket"
        rst = next((s for s in own if s.t >= seg.t and TcpFlags.RST in s.flags), None)
        if rst is not None:
            return rst.t, S.CLOSED, "the peer sent data to the timewait socket, which answered RST"
        return None
    return None


def _initial_seq(segments: list[Segment]) -> int:
    """The sender's initial sequence number: its SYN's, else its first segment's."""
    for seg in segments:
        if TcpFlags.SYN in seg.flags:
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

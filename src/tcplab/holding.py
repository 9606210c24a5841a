"""Which scenario holds each TCP state, and what a results file says it observed.

``HOLDERS`` is the map, as data: for each of the eleven states, the scenarios that hold it
(preferred first) and how. ``observations`` reads a run's results (the timelines every
scenario result carries) and finds, per state, the longest stretch during which the kernel
reported an end in that state, with that end's timer and queues and what its peers were
doing meanwhile. ``tcplab states`` prints it; the ``all-states`` scenario runs the holders
together to judge C01.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tcplab import results
from tcplab.errors import UsageError
from tcplab.scenario import ScenarioResult
from tcplab.states import TcpState


@dataclass(frozen=True)
class Holder:
    """A scenario that produces ``state`` and keeps it while the kernel is watched."""

    scenario: str
    how: str


S = TcpState
#: state -> the scenarios holding it, preferred first.
HOLDERS: dict[TcpState, tuple[Holder, ...]] = {
    S.LISTEN: (Holder("listen", "a listener: stays until closed (accept queue 0 of 8)"),),
    S.SYN_SENT: (
        Holder("syn-sent", "listener backlog 0 with one unaccepted connection: SYNs dropped"),
    ),
    S.SYN_RECV: (
        Holder("syn-recv", "final ACK lost; ACK into a full accept queue; TCP_DEFER_ACCEPT"),
    ),
    S.ESTABLISHED: (Holder("listen", "an accepted connection, both ends idle"),),
    S.FIN_WAIT1: (
        Holder("fin-wait1", "FIN queued behind data the peer (small SO_RCVBUF) doesn't read"),
    ),
    S.FIN_WAIT2: (
        Holder("fin-wait1", "FIN acknowledged; the peer's application has not closed"),
        Holder("close-wait-leak", "the peer's handler never calls close()"),
        Holder("half-close", "shutdown(SHUT_WR); the peer keeps sending"),
        Holder("graceful-close", "FIN acknowledged; the server has not closed"),
    ),
    S.CLOSE_WAIT: (
        Holder("fin-wait1", "end of file read, close() not called yet"),
        Holder("close-wait-leak", "the application never calls close()"),
        Holder("graceful-close", "end of file not read yet"),
    ),
    S.CLOSING: (
        Holder("closing", "simultaneous close: FINs crossed, their ACKs held by a qdisc on lo"),
    ),
    S.LAST_ACK: (
        Holder("graceful-close", "FIN queued behind data the client (zero window) doesn't read"),
    ),
    S.TIME_WAIT: (
        Holder("closing", "the 60 s TIME_WAIT timer, both ends after a simultaneous close"),
        Holder("graceful-close", "the 60 s TIME_WAIT timer, active closer"),
        Holder("server-closes-first", "the 60 s TIME_WAIT timer, on the server"),
    ),
    S.CLOSED: (
        Holder("closed", "a bound socket that never listened; a reset socket's open fd"),
        Holder("linger-abort", "a reset socket's open fd"),
    ),
}


#: The scenario that runs every first holder at once: a fallback source for each state.
COMPOSITE = "all-states"


def holder_ids() -> list[str]:
    """Every scenario id named in ``HOLDERS``, in first-mention order."""
    return list(dict.fromkeys(h.scenario for holders in HOLDERS.values() for h in holders))


@dataclass
class Episode:
    """One stretch of time during which the kernel reported ``end`` in ``state``."""

    state: TcpState
    end: str
    start: float
    stop: float
    open_ended: bool  # nothing else seen for this end afterwards: held at least this long
    socket: dict[str, Any]  # the last record of the stretch (timer and queues settle)
    peers: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def held(self) -> float:
        return self.stop - self.start


def _state_of(entry: Mapping[str, Any]) -> TcpState | None:
    sock = entry.get("socket")
    return TcpState.parse(sock["state"]) if sock else None


def episodes(timeline: Sequence[Mapping[str, Any]]) -> list[Episode]:
    """Every stretch of every end of one timeline (entries as in results files).

    Stretches come from snapshots (entries with a ``socket``). Each stretch's ``peers`` are
    the other ends as last seen while it lasted: at its last record, or, where the end's
    transitions were traced (a merged timeline), up to the traced move that ended it. A
    peer's last snapshot can be stale (no one polled it while this end was held), so a
    traced state newer than that snapshot wins, marked with its ``source`` (``trace``;
    ``capture`` for a timewait socket's substate).
    """
    found: list[Episode] = []
    last_t = max((float(e["t"]) for e in timeline if "socket" in e), default=0.0)
    traced = {str(e["end"]) for e in timeline if "socket" not in e and e.get("kind") == "state"}
    current: dict[str, Episode] = {}
    ended: set[str] = set()  # ends whose running stretch a traced move has ended
    latest: dict[str, dict[str, Any] | None] = {}

    def others(end: str) -> dict[str, dict[str, Any] | None]:
        return {k: v for k, v in latest.items() if k != end}

    for entry in timeline:
        end = str(entry["end"])
        if "socket" not in entry:  # a traced or captured event, not a snapshot
            if entry.get("kind") != "state" or not entry.get("new"):
                continue
            latest[end] = _traced(entry, latest.get(end))
            if end in current and current[end].state.value != entry["new"]:
                ended.add(end)
            for other, stretch in current.items():
                if other != end and other in traced and other not in ended:
                    stretch.peers = others(other)
            continue
        t, state = float(entry["t"]), _state_of(entry)
        running = current.get(end)
        if running is not None and running.state is not state:
            running.stop, running.open_ended = t, False
            del current[end]
        latest[end] = entry.get("socket")
        if state is None:
            continue
        if end not in current:
            current[end] = Episode(state, end, t, last_t, True, {})
            ended.discard(end)
            found.append(current[end])
        # The stretch's last record, and its peers as last seen by then (a hold's final
        # observation records the peers just before the end itself).
        current[end].socket = dict(entry["socket"])
        if end not in ended:
            current[end].peers = others(end)
    return found


def _traced(event: Mapping[str, Any], last: dict[str, Any] | None) -> dict[str, Any] | None:
    """A peer's state after a traced transition: its last snapshot if that says the same,
    else the traced state alone (no queues or timer were read then)."""
    new = str(event["new"])
    if last is not None and last.get("state") == new:
        return last
    return {"state": new, "source": str(event.get("source", "trace"))}


@dataclass
class Observation:
    """What one run of a holder scenario showed for one state."""

    state: TcpState
    holder: Holder
    run_file: Path
    status: str
    mode: str
    episode: Episode | None


def observations(files: Iterable[Path]) -> dict[TcpState, Observation | None]:
    """Per state, from the first of ``files`` (newest first: ``tcplab.results.run_files``)
    holding a run of one of its holders: the last such run's longest stretch in that state
    (None if no file has any holder run). A file that is not a results file is passed over."""
    out: dict[TcpState, Observation | None] = dict.fromkeys(HOLDERS)
    for path in files:
        try:
            run = results.load(path)
        except UsageError:
            continue
        runs: dict[str, ScenarioResult] = {}
        for result in run.scenarios:
            if result.status != "skipped":
                runs[result.id] = result  # the last run of each id wins
        for state, holders in HOLDERS.items():
            if out[state] is not None:
                continue
            fallback = Holder(COMPOSITE, "every holder at once: the longest stretch of any")
            for holder in (*holders, fallback):
                held_by = runs.get(holder.scenario)
                if held_by is None:
                    continue
                stretches = [e for tl in _timelines(held_by) for e in episodes(tl)
                             if e.state is state]
                best = max(stretches, key=lambda e: e.held, default=None)
                out[state] = Observation(state, holder, run.path, held_by.status, held_by.mode, best)
                break
    return out


def _timelines(result: ScenarioResult) -> list[list[dict[str, Any]]]:
    """Each connection's timeline: merged with the traced events where the results file kept
    it (``connections`` lists the lab's connections first, in the order of ``timelines``)."""
    out = []
    for i, snapshots in enumerate(result.timelines):
        conn = result.connections[i] if i < len(result.connections) else {}
        merged = conn.get("timeline")
        out.append(merged if isinstance(merged, list) and merged else snapshots)
    return out

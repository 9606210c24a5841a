"""Measuring what the kernel did, without asserting it: the helpers scenarios share.

A public module, for your own scenarios as much as the bundled ones (``from tcplab.measure
import leaves, path_of``). ``tcplab.expect`` asserts (``reaches`` fails unless the end gets
there), which is right while a scenario drives the states; but when the next state is what
a judge decides on (TIME_WAIT or not, on which side), asserting it first would leave the
judge nothing to decide. These measure instead, and a value such as None ("gone", "never
armed") is a result:

=================  =====================================================================
``leaves``         wait until an end is in none of some states; the record then (None: gone)
``stays``          how long an end stays in a state, up to a limit (0: not in it)
``path_of``        the states an end was observed in, in order, as names (None: gone)
``traced_of``      the same from the kernel's own transitions (tracefs), () if not traced
``state_of``       a record's state name, None for a socket the kernel no longer reports
``timer_left``     seconds left on a record's timer of one kind, None if not armed
=================  =====================================================================

Like ``tcplab.expect``, the waits run under trio or asyncio (through anyio).
"""

from __future__ import annotations

__all__ = ["leaves", "path_of", "state_of", "stays", "timer_left", "traced_of"]

import anyio

from tcplab.expect import eventually, within
from tcplab.kernel.model import SocketRecord, TimerKind
from tcplab.lab import Connection, End
from tcplab.states import TcpState


async def leaves(end: End, *states: TcpState, timeout: float = 5.0) -> SocketRecord | None:
    """Poll until ``end`` is in none of ``states``; return its record then (None: gone)."""

    def left() -> list[SocketRecord | None]:  # truthy once it left, whatever the record
        record = end.observe_all()
        return [record] if record is None or record.state not in states else []

    names = "/".join(s.value for s in states)
    return (await eventually(left, timeout=timeout, what=f"{end.label} to leave {names}"))[0]


def path_of(conn: Connection, label: str) -> tuple[str | None, ...]:
    """The states the end ``label`` was observed in, in order (None: gone)."""
    return tuple(s and s.value for s in conn.timeline.path(label))


def traced_of(conn: Connection, label: str) -> tuple[str, ...]:
    """The end ``label``'s states from the kernel's own transitions, or () if not traced."""
    recording = conn.client.lab.recording
    if recording is None or recording.recorder is None:
        return ()
    recording.sync()
    return tuple(s.value for s in conn.timeline.traced_path(label))


def timer_left(record: SocketRecord | None, kind: TimerKind) -> float | None:
    """Seconds left on ``record``'s timer if it is of ``kind``, else None (not armed)."""
    return None if record is None or record.timer.kind is not kind else record.timer.remaining


def state_of(record: SocketRecord | None) -> str | None:
    """A record's state name, None for a socket the kernel no longer reports."""
    return None if record is None else record.state.value


async def stays(end: End, state: TcpState, *, up_to: float) -> float:
    """How long ``end`` stays in ``state``, polled, up to ``up_to`` seconds (0: not in it).

    Unlike ``holds`` it does not assert: a state that does not last is a measurement. When
    the whole stretch was held, its last observation (and the peers') is recorded, so the
    timeline shows how long it lasted."""
    started = anyio.current_time()

    def left() -> bool:
        record = end.observe_all()
        return record is None or record.state is not state

    if left():
        return 0.0
    if await within(left, timeout=up_to):
        return anyio.current_time() - started
    for peer in end.peers:
        peer.observe(source="held", force=True)
    end.observe(source="held", force=True)
    return anyio.current_time() - started

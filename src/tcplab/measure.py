"""Measuring what the kernel did, without asserting it: the helpers scenarios share.

A public module, for your own scenarios as much as the bundled ones (``from tcplab.measure
import leaves, path_of``). ``tcplab.expect`` asserts (``reaches`` fails unless the end gets
there), which is right while a scenario drives the states; but when the next state is what
a judge decides on (TIME_WAIT or not, on which side), asserting it first would leave the
judge nothing to decide. These measure instead, and a value such as None ("gone", "never
armed") is a result:

=================  =====================================================================
``leaves``         wait until an end is in none of some states; the record then (None: gone)
``stays``          how long an end (or several) stays in a state, up to a limit (0: not in it)
``takes``          seconds until a condition holds, up to a limit (None: it did not)
``follow``         an end's states over a window, in order, and how long each was seen
``path_of``        the states an end was observed in, in order, as names (None: gone)
``traced_of``      the same from the kernel's own transitions (tracefs), () if not traced
``state_of``       a record's state name, None for a socket the kernel no longer reports
``count_in``       how many of some ends are in a state now
``owner``          which process (name/pid/fd) holds a record's socket, None if none does
``timer_left``     seconds left on a record's timer of one kind, None if not armed
=================  =====================================================================

Like ``tcplab.expect``, the waits run under trio or asyncio (through anyio).
"""

from __future__ import annotations

__all__ = ["count_in", "follow", "leaves", "owner", "path_of", "state_of", "stays", "takes",
           "timer_left", "traced_of"]

from collections.abc import Callable, Sequence

import anyio

from tcplab.expect import POLL_INTERVAL, eventually, within
from tcplab.kernel.model import SocketRecord, TimerKind
from tcplab.kernel.procfs import with_owners
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


def count_in(ends: Sequence[End], state: TcpState) -> int:
    """How many of ``ends`` the kernel shows in ``state`` now."""
    return sum(1 for end in ends if (record := end.observe()) is not None and record.state is state)


def owner(record: SocketRecord | None, pids: set[int]) -> str | None:
    """``name/pid/fdN`` of the process among ``pids`` holding ``record``'s socket, else None
    (a TIME_WAIT or orphaned socket, or one in a listener's accept queue, has no owner)."""
    if record is None or not record.inode:
        return None
    found = with_owners([record], pids)[0].owners
    return ", ".join(f"{o.name}/{o.pid}/fd{o.fd}" for o in found) or None


async def stays(ends: End | Sequence[End], state: TcpState, *, up_to: float) -> float:
    """How long ``ends`` stay in ``state``, polled, up to ``up_to`` seconds (0: not in it).

    Several ends: those in ``state`` now, until the first of them leaves it (0: none is).
    Unlike ``holds`` it does not assert: a state that does not last is a measurement. When
    the whole stretch was held, its last observation (and the peers') is recorded, so the
    timeline shows how long it lasted."""
    started = anyio.current_time()

    def is_in(end: End) -> bool:
        record = end.observe_all()
        return record is not None and record.state is state

    held = [end for end in ([ends] if isinstance(ends, End) else ends) if is_in(end)]
    if not held:
        return 0.0
    if await within(lambda: not all(map(is_in, held)), timeout=up_to):
        return anyio.current_time() - started
    for end in held:
        for peer in end.peers:
            peer.observe(source="held", force=True)
        end.observe(source="held", force=True)
    return anyio.current_time() - started


async def takes(done: Callable[[], object], *, up_to: float) -> float | None:
    """Seconds until ``done()`` is true, polled, or None if it is not within ``up_to``: how
    long a change takes to show (a FIN once a loop runs again, a waiting request once a
    connection is free)."""
    started = anyio.current_time()
    return await within(lambda: anyio.current_time() - started if done() else None, timeout=up_to)


async def follow(end: End, *, up_to: float) -> tuple[tuple[str | None, ...], dict[str, float]]:
    """The states ``end`` goes through over ``up_to`` seconds (polled; it stops early once
    the end is gone: None), each once in order, and how long it was seen in each (the last
    one: until the window ended)."""
    path: list[str | None] = [state_of(end.observe_all())]
    times: dict[str, float] = {}
    since = start = anyio.current_time()
    with anyio.move_on_after(up_to):
        while path[-1] is not None:
            await anyio.sleep(POLL_INTERVAL)
            if (now := state_of(end.observe_all())) != path[-1]:
                times[str(path[-1])] = anyio.current_time() - since
                since = anyio.current_time()
                path.append(now)
    if path[-1] is not None:
        times[path[-1]] = min(anyio.current_time(), start + up_to) - since
    return tuple(path), times

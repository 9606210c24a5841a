"""Waiting for, holding and asserting what the kernel reports about an end.

Loopback is instant but not synchronous: a FIN is processed in softirq context a few
microseconds after close() returns. So nothing here sleeps a fixed time and hopes; it polls
the kernel (exact four-tuple lookups, ~15 µs each) until the expected state shows up or a
deadline passes. Each poll observes the end *and its peer*, so a failure message shows both
ends' states over time, not just the last value.

Every wait here runs under trio (the scenarios) and under asyncio (your tests, with
pytest-asyncio or anyio's plugin): it sleeps and keeps its deadline through anyio, which
uses whichever of the two is running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import anyio

from tcplab.kernel.model import SocketRecord, TimerKind
from tcplab.lab import End, Evidence, LabError
from tcplab.states import IllegalPath, TcpState, check_path
from tcplab.timeline import Event

T = TypeVar("T")

POLL_INTERVAL = 0.002  # seconds between polls while waiting for a change
HOLD_INTERVAL = 0.02  # seconds between polls while checking that a state holds


class ExpectationFailed(AssertionError):
    """The kernel did not report what the scenario expected; the message has the timeline."""


def _fail(end: End, message: str) -> ExpectationFailed:
    return ExpectationFailed(
        f"{end.label} {end.four_tuple}: {message}\ntimeline (both ends):\n{end.timeline.render()}"
    )


def _show(record: SocketRecord | None) -> str:
    return "gone" if record is None else record.state.value + (" (fd only)" if record.fd_only else "")


async def _poll(probe: Callable[[], T], done: Callable[[T], bool], timeout: float) -> tuple[T, bool]:
    """Call ``probe`` every ``POLL_INTERVAL`` until ``done`` says yes or ``timeout`` passes;
    return the last value and whether it was done. The one polling loop of the waits here,
    so each of them only says what it waits for and how it fails."""
    value = probe()
    with anyio.move_on_after(timeout):
        while not done(value):
            await anyio.sleep(POLL_INTERVAL)
            value = probe()
        return value, True
    return value, False


async def reaches(
    end: End, state: TcpState | Iterable[TcpState], *, timeout: float = 5.0
) -> SocketRecord:
    """Wait until the kernel reports ``end`` in ``state`` (or one of several); return that record."""
    wanted = {state} if isinstance(state, TcpState) else set(state)
    record, done = await _poll(
        end.observe_all, lambda r: r is not None and r.state in wanted, timeout
    )
    if done and record is not None:
        return record
    names = "/".join(sorted(s.value for s in wanted))
    raise _fail(end, f"expected {names} within {timeout} s; last seen {_show(record)}")


async def holds(end: End, state: TcpState, *, for_: float, mark: bool = False) -> SocketRecord:
    """Assert that ``end`` stays in ``state`` for ``for_`` seconds (polled); return the last record.

    A timeline keeps changes only, so a state held to the end of a scenario would show no
    duration; ``mark``: record the hold's last observation of the end and its peers anyway
    (source ``held``).
    """
    deadline = anyio.current_time() + for_
    record = end.observe_all()
    while True:
        if record is None or record.state is not state:
            raise _fail(end, f"expected {state} to hold for {for_} s; saw {_show(record)}")
        if anyio.current_time() >= deadline:
            if not mark:
                return record
            for peer in end.peers:
                peer.observe(source="held", force=True)
            record = end.observe(source="held", force=True)
            if record is None or record.state is not state:
                raise _fail(end, f"expected {state} to hold for {for_} s; saw {_show(record)}")
            return record
        await anyio.sleep(min(HOLD_INTERVAL, max(0.0, deadline - anyio.current_time())))
        record = end.observe_all()


async def gone(end: End, *, timeout: float = 5.0) -> None:
    """Wait until the kernel's tables hold nothing for ``end``'s four-tuple and its fd is closed."""
    record, done = await _poll(end.observe_all, lambda r: r is None, timeout)
    if done:
        return
    raise _fail(end, f"expected the socket to be gone within {timeout} s; still {_show(record)}")


def absent(end: End, state: TcpState) -> None:
    """Assert that the kernel does not hold ``end`` in ``state`` right now."""
    record = end.observe_all()
    if record is not None and record.state is state:
        raise _fail(end, f"expected no {state} for this four-tuple; the kernel holds {record.describe()}")


def timer_between(end: End, record: SocketRecord, kind: TimerKind, low: float, high: float) -> float:
    """Assert that ``record`` has a ``kind`` timer with ``low`` <= seconds left <= ``high``."""
    timer = record.timer
    if timer.kind is not kind or not low <= timer.remaining <= high:
        raise _fail(
            end, f"expected a {kind.value} timer with {low}..{high} s left; kernel says {timer}"
        )
    return timer.remaining


def path_seen(end: End, *states: TcpState | None) -> None:
    """Assert that ``end`` was seen going through ``states`` in this order (others may come
    between), and that the whole observed path is legal in RFC 9293's diagram."""
    if not end.timeline.saw(end.label, *states):
        wanted = " -> ".join("gone" if s is None else s.value for s in states)
        raise _fail(end, f"expected the path {wanted}")
    check_path([s for s in end.timeline.path(end.label) if s is not None], strict=False)


def _recording(end: End) -> Evidence:
    recording = end.lab.recording
    if recording is None or not recording.has("trace"):
        raise LabError(
            f"{end.label}: this run has no trace of the kernel's transitions "
            "(declare requires=('trace',) in the scenario)"
        )
    return recording


async def traced_path(
    end: End, *states: TcpState, timeout: float = 2.0
) -> list[TcpState]:
    """Wait until the kernel's own transitions of ``end`` contain ``states`` as consecutive
    steps (nothing between them), and assert that the whole traced path is a walk of RFC
    9293's diagram one arrow at a time (``check_path(strict=True)``). Return the path.

    The trace sees every ``tcp_set_state``, so unlike ``path_seen`` nothing may be missing:
    a state that lasted a microsecond is in it.
    """
    recording = _recording(end)
    wanted = list(states)

    def traced() -> list[TcpState]:
        recording.sync()
        return end.timeline.traced_path(end.label)

    path, done = await _poll(traced, lambda p: _contains(p, wanted), timeout)
    if done:
        try:
            check_path(path, strict=True)
        except IllegalPath as exc:
            raise _fail(end, str(exc)) from None
        return path
    steps = " -> ".join(s.value for s in wanted)
    got = " -> ".join(s.value for s in path) or "nothing"
    raise _fail(end, f"expected the traced transitions {steps}; the kernel traced {got}")


def _contains(path: list[TcpState], wanted: list[TcpState]) -> bool:
    n = len(wanted)
    return any(path[i:i + n] == wanted for i in range(len(path) - n + 1))


def segments(end: End) -> list[Event]:
    """The segments captured so far on ``end``'s connection (both directions), oldest first."""
    recording = end.lab.recording
    if recording is None or not recording.has("capture"):
        raise LabError(f"{end.label}: this run captures no segments (needs root)")
    recording.sync()
    return end.timeline.segments()


async def within(probe: Callable[[], T], *, timeout: float) -> T | None:
    """The first truthy value ``probe`` returns within ``timeout`` seconds, or None.

    For measurements where "it never happened" is a result, not a failure (a re-sent FIN
    that never comes, a keepalive that never gives up)."""
    value, done = await _poll(probe, bool, timeout)
    return value if done else None


async def eventually(probe: Callable[[], T], *, timeout: float = 5.0, what: str) -> T:
    """Poll ``probe`` until it returns something truthy; return it, or fail after ``timeout``.

    For conditions on many sockets at once (counts in a dump, counters), where ``reaches``
    on one end does not fit. ``what`` completes "expected ... within N s".
    """
    value, done = await _poll(probe, bool, timeout)
    if done:
        return value
    raise ExpectationFailed(f"expected {what} within {timeout} s; last value {value!r}")

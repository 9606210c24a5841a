"""Helpers of fin-wait2-timeout: how long an end lives, and TIME_WAIT's timer elsewhere.

``probe_time_wait_timer`` runs through ``tcplab.isolated`` in a fresh namespace (the
default tcp_fin_timeout), so TIME_WAIT's timer there can be set beside the one measured
with a short fin timeout.
"""

from __future__ import annotations

from typing import Any

from tcplab import End, Lab, SocketRecord, TcpState, TimerKind
from tcplab.expect import reaches, within
from tcplab.kernel import sysctl
from tcplab.ports import active_close

S = TcpState
FIN = "net.ipv4.tcp_fin_timeout"


async def probe_time_wait_timer(lab: Lab) -> dict[str, Any]:
    """TIME_WAIT's timer on entry after a plain active close (None: no TIME_WAIT, or no
    timer), and the fin timeout here."""
    record = await active_close(await lab.connect())
    return {"fin_timeout": sysctl.read_int(FIN), "time_wait_timer_s": time_wait_timer(record)}


async def time_wait_timers(lab: Lab) -> tuple[float, ...]:
    """TIME_WAIT's timer on entry after a plain active close, and after an orphan whose peer
    sends its FIN soon after (within the fin timeout); one per close that made a TIME_WAIT."""
    plain = await active_close(await lab.connect())
    late = await lab.connect()
    await late.client.close()
    await reaches(late.client, S.FIN_WAIT2)
    await late.server.close()
    late_tw = await reaches(late.client, {S.TIME_WAIT, S.CLOSED})
    return tuple(t for t in (time_wait_timer(plain), time_wait_timer(late_tw)) if t is not None)


async def lifetime(lab: Lab, end: End, start: float, limit: float) -> float | None:
    """Seconds from lab time ``start`` until ``end`` is gone from the tables, or None if it is
    still there at ``start + limit``: measured, since whether it goes is the question."""
    went = await within(lambda: end.observe_all() is None,
                        timeout=max(0.0, start + limit - lab.clock()))
    return None if went is None else lab.clock() - start


async def state_at(lab: Lab, end: End, at: float) -> SocketRecord | None:
    """``end``'s record at lab time ``at``, or the first moment before that it leaves its
    current state (whichever comes first)."""
    first = end.observe_all()
    left = await within(lambda: [r] if (r := end.observe_all()) is None or first is None
                        or r.state is not first.state else [], timeout=max(0.0, at - lab.clock()))
    return left[0] if left else end.observe_all()


def time_wait_timer(record: SocketRecord) -> float | None:
    """Seconds left on a TIME_WAIT record's timer (None: not TIME_WAIT, or no timer)."""
    timed = record.state is S.TIME_WAIT and record.timer.kind is TimerKind.TIMEWAIT
    return record.timer.remaining if timed else None

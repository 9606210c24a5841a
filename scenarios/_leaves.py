"""Waiting for an end to leave some states, wherever it goes (gone included).

``reaches`` asserts the state an end must reach, which is right while a scenario drives
the states; but when that next state is what a verdict judges (TIME_WAIT or not, on which
side), asserting it first would leave the verdict nothing to decide. ``leaves`` waits for
the transition and returns what the kernel then reports, for the verdict to read.
"""

from __future__ import annotations

from tcplab import End, SocketRecord, TcpState
from tcplab.expect import eventually


async def leaves(end: End, *states: TcpState, timeout: float = 5.0) -> SocketRecord | None:
    """Poll until ``end`` is in none of ``states``; return its record then (None: gone)."""

    def left() -> list[SocketRecord | None]:  # truthy once it left, whatever the record
        record = end.observe_all()
        return [record] if record is None or record.state not in states else []

    names = "/".join(s.value for s in states)
    return (await eventually(left, timeout=timeout, what=f"{end.label} to leave {names}"))[0]

"""Reading a close from the captured segments: when each end's FIN left, when it was acked.

Segments are captured as they leave their sender (after the qdisc, if one held them), with
relative sequence numbers (``tcplab.recording``): a FIN at seq ``s`` is acknowledged by a
segment of the peer whose ack is above ``s``.
"""

from __future__ import annotations

from tcplab.timeline import Event


def fin_of(segs: list[Event], sender: str) -> Event | None:
    """``sender``'s first segment carrying FIN, if one was captured."""
    return next((s for s in segs if s.data["direction"].startswith(f"{sender}->")
                 and "FIN" in s.data["flags"].split(",")), None)


def ack_of(segs: list[Event], fin: Event | None) -> Event | None:
    """The peer's first segment acknowledging ``fin`` (None: none captured, or no FIN)."""
    if fin is None:
        return None
    back = fin.data["direction"].split("->")[1] + "->"
    return next((s for s in segs if s.data["direction"].startswith(back)
                 and (s.data["ack"] or 0) > fin.data["seq"]), None)


def t_of(event: Event | None) -> float | None:
    """When ``event`` happened (lab seconds), None if it did not."""
    return None if event is None else event.t

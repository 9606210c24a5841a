"""Cases for the judges in tcplab.judges.timewait."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.timewait import TimeWaitLength
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED
WATCHED = "watched until the kernel dropped it"

CASES: list[Case] = [
    # C11: TIME_WAIT's length against RHEL's 60 s (001) and 2 x MSL in 1-4 minutes (002)
    Case("C11", "mainline Linux: the timer armed on entry is TCP_TIMEWAIT_LEN",
         TimeWaitLength(59.998), C, ("60.0 s", "tolerance +-5 s", "seed 001")),
    Case("C11", "watched lifetime, the timer wheel fired 2 s late (HZ=250): just inside",
         TimeWaitLength(62.1, WATCHED, armed_s=60.0), C, ("62.1 s", "armed at 60.0 s")),
    Case("C11", "a lifetime 6 s off 60 s: outside the tolerance, still 2 x MSL in range",
         TimeWaitLength(66.0, WATCHED), P, ("66.0 s", "not seed 001's 60 s")),
    Case("C11", "a kernel with the Windows-like 240 s: 2 x RFC 1122's MSL, not RHEL's 60 s",
         TimeWaitLength(240.0), P, ("240.0 s", "2 x an MSL of 120 s")),
    Case("C11", "a kernel whose TIME_WAIT were 30 s: shorter than 2 x any MSL quoted",
         TimeWaitLength(30.0), R, ("30.0 s", "60-240 s")),
    Case("C11", "a TIME_WAIT of 250 s, past 4 minutes and the tolerance",
         TimeWaitLength(250.0), R, ("250.0 s",)),
    Case("C11", "no timewait timer reported", TimeWaitLength(None), R, ("no TIME_WAIT length",)),
]

"""Cases for the judges in tcplab.judges.segments."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.segments import CloseWay, SegmentCounts
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED

AT_ONCE, REPLY, WORK = "server closes at once", "server sends a reply", "server works 0.25 s"


def counts(*ways: CloseWay, handshakes: int = 150, three: int = 150) -> SegmentCounts:
    return SegmentCounts(handshakes, three, ways, 1100, 1100)


CASES = [
    Case("C04", "as measured here: prompt closes fold the ACK into the FIN, late ones do not",
         counts(CloseWay(AT_ONCE, 50, 0, 50), CloseWay(REPLY, 50, 50, 0), CloseWay(WORK, 50, 50, 0)),
         P, ("150 of 150 handshakes", "0 of 50 apart (0%)", "met in 2 of 3 ways")),
    Case("C04", "ACK and FIN apart in most closes of every way",
         counts(CloseWay(AT_ONCE, 50, 40, 10), CloseWay(WORK, 50, 50, 0)), C, ("80%",)),
    Case("C04", "just over the threshold everywhere (26 of 50)",
         counts(CloseWay(AT_ONCE, 50, 26, 24), CloseWay(WORK, 50, 50, 0)), C, ("52%",)),
    Case("C04", "exactly half is not 'usually'",
         counts(CloseWay(AT_ONCE, 50, 25, 25), CloseWay(WORK, 50, 50, 0)), P, ("50%",)),
    Case("C04", "the FIN carried the ACK in every way",
         counts(CloseWay(AT_ONCE, 50, 0, 50), CloseWay(WORK, 50, 2, 48)), R, ("met in 0 of 2",)),
    Case("C04", "a handshake took four segments (SYN and ACK apart)",
         counts(CloseWay(WORK, 50, 50, 0), handshakes=50, three=49), R, ("49 of 50 handshakes",)),
    Case("C04", "closes not classified (nothing captured after the FIN)",
         counts(CloseWay(WORK, 50, 0, 0)), R, ("50 unclassified", "n/a")),
    Case("C04", "nothing measured", SegmentCounts(0, 0, ()), R, ("no close measured",)),
]

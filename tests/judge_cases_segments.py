"""Cases for the judges in tcplab.judges.segments."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.segments import (
    CloseWay,
    FinWaitSampling,
    FinWaitShares,
    RequestsTimeWait,
    ResentFin,
    SegmentCounts,
    WhereTimeWaitGathers,
)
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED

AT_ONCE, REPLY, WORK = "server closes at once", "server sends a reply", "server works 0.25 s"


def counts(*ways: CloseWay, handshakes: int = 150, three: int = 150) -> SegmentCounts:
    return SegmentCounts(handshakes, three, ways, 1100, 1100)


def fw(fw1: int, fw2: int, name: str = "idle closer") -> FinWaitSampling:
    return FinWaitSampling(name, 40, 170, 1.0, fw1, fw2, 40 if fw1 else 0, 40 if fw2 else 0)


IDLE_AS_MEASURED = fw(310, 3330)
SLOW_AS_MEASURED = fw(3600, 0, "slow reader")

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
    Case("C08", "as measured: FIN_WAIT1 rare while the peer closes later, dominant with a slow reader",
         FinWaitShares(IDLE_AS_MEASURED, SLOW_AS_MEASURED, 0.5, 0.5), C,
         ("FIN_WAIT1 9%", "FIN_WAIT1 100%", "about 46 ms in FIN_WAIT1")),
    Case("C08", "rare in both workloads",
         FinWaitShares(IDLE_AS_MEASURED, fw(100, 3000, "slow reader"), 0.5, 0.5), C, ("3%",)),
    Case("C08", "just inside RARE (25%)", FinWaitShares(fw(250, 750), fw(0, 0), 0.5, 0.5), C,
         ("25%",)),
    Case("C08", "just outside RARE (26%)", FinWaitShares(fw(260, 740), fw(0, 0), 0.5, 0.5), R,
         ("26%",)),
    Case("C08", "FIN_WAIT1 as common as FIN_WAIT2 with a peer that closes later",
         FinWaitShares(fw(1000, 1000), SLOW_AS_MEASURED, 0.5, 0.5), R, ("50%",)),
    Case("C08", "neither state ever sampled", FinWaitShares(fw(0, 0), fw(0, 0), 0.5, 0.5), R,
         ("n/a",)),
    Case("C12", "TIME_WAIT acks the re-sent FIN; the end that skipped it resets",
         ResentFin("TIME_WAIT", "ACK", True, "none", "RST", "ECONNRESET", True), C,
         ("[ACK]", "read no error", "[RST]", "ECONNRESET", "was restarted")),
    Case("C12", "TIME_WAIT answers with RST (as if it were closed)",
         ResentFin("TIME_WAIT", "RST|ACK", False, "ECONNRESET", "RST", "ECONNRESET"), R,
         ("[RST|ACK]",)),
    Case("C12", "TIME_WAIT stays silent: the peer times out on its own",
         ResentFin("TIME_WAIT", "", False, "none", "RST", "ECONNRESET"), R, ("no answer",)),
    Case("C12", "the closed end answers nothing, the peer sees no error",
         ResentFin("TIME_WAIT", "ACK", True, "none", "", "none"), R, ("[no answer]",)),
    Case("C12", "the active closer was no longer in TIME_WAIT when the FIN came",
         ResentFin(None, "RST", False, "ECONNRESET", "RST", "ECONNRESET", None), R,
         ("no state",)),
    Case("C14", "the first closer keeps every TIME_WAIT", WhereTimeWaitGathers(200, 200, 0, 0, 200),
         C, ("left 200 TIME_WAIT at the server and 0 at the clients",)),
    Case("C14", "just inside the tolerance (198 of 200)", WhereTimeWaitGathers(200, 198, 0, 0, 198),
         C),
    Case("C14", "just outside the tolerance (197 of 200)", WhereTimeWaitGathers(200, 197, 0, 0, 200),
         R, ("197",)),
    Case("C14", "TIME_WAIT on both sides when the server closes first",
         WhereTimeWaitGathers(200, 200, 200, 0, 200), R),
    Case("C14", "TIME_WAIT always at the server, whoever closes first",
         WhereTimeWaitGathers(200, 200, 0, 200, 0), R),
    Case("C17", "as measured: one TIME_WAIT per short request, one for the kept-alive connection",
         RequestsTimeWait(1000, 1000, 1000, 10.0, 1, 1, 2.0, 60.0, 10.0), C,
         ("1000 TIME_WAIT", "10.0 against 2.0", "60 against 10 us")),
    Case("C17", "just inside: 990 of 1000", RequestsTimeWait(1000, 990, 1000, 10.0, 1, 1, 2.0), C),
    Case("C17", "just outside: 989 of 1000 (TIME_WAIT expired or capped)",
         RequestsTimeWait(1000, 989, 1000, 10.0, 1, 1, 2.0), R, ("989",)),
    Case("C17", "keep-alive as costly in segments as one connection per request",
         RequestsTimeWait(1000, 1000, 1000, 10.0, 1, 1, 10.0), R),
    Case("C17", "keep-alive connections left TIME_WAIT per request",
         RequestsTimeWait(1000, 1000, 1000, 10.0, 1000, 1, 2.0), R),
]

"""Cases for the judges in tcplab.judges.queues (K05, K06, K08, K09)."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.queues import (
    AbortOnOverflow,
    OverflowRun,
    ResetInTimeWait,
    ReuseDelayTry,
    Rfc1337,
    Somaxconn,
    TwReuseDelay,
)
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED
EST, SR, SS = "ESTABLISHED", "SYN_RECV", "SYN_SENT"

#: As measured: 1 resets the handshake, 0 keeps it and it recovers; a late SYN waits.
ON = OverflowRun(1, 1.5, 0.0001, "CLOSED", None, None, "", SS, EST, 2, 1)
OFF = OverflowRun(0, 1.5, None, EST, SR, 0.18, "second", SS, EST, 7, 0)
ON_LATE_RESET = OverflowRun(1, 1.5, 0.0001, "CLOSED", None, None, "", "CLOSED", "CLOSED", 2, 2)

CASES = [
    Case("K05", "as measured: the late SYN to a full queue is dropped and retried, not reset",
         AbortOnOverflow((ON, OFF), 0), P, ("reset 0.1 ms", "'second' intact", "not reset")),
    Case("K05", "the late SYN is reset too: every new connection reset, as documented",
         AbortOnOverflow((ON_LATE_RESET, OFF), 0), C, ("default 0",)),
    Case("K05", "the mechanism holds, but the default is 1",
         AbortOnOverflow((ON_LATE_RESET, OFF), 1), P, ("default 1",)),
    Case("K05", "with 1 the handshake is not reset",
         AbortOnOverflow((OverflowRun(1, 1.5, None, EST, SR, 0.2, "second", SS, EST), OFF), 0),
         R, ("not reset in 1.5 s",)),
    Case("K05", "with 0 the kept connection never recovers after room is made",
         AbortOnOverflow((ON, OverflowRun(0, 1.5, None, EST, SR, None, "", SS, EST)), 0), R,
         ("never accepted",)),
    Case("K05", "with 0 the connection was reset all the same",
         AbortOnOverflow((ON, OverflowRun(0, 1.5, 0.01, "CLOSED", None, None, "", SS, EST)), 0),
         R),
    Case("K05", "nothing measured", AbortOnOverflow((), None), R, ("not measured",)),
    Case("K06", "as measured: 64 cut to 8, 4 kept, nine queued, default 4096",
         Somaxconn(8, 64, 8, 4, 4, 12, 9, 3, 4096), C, ("limit of 8", "9 completed")),
    Case("K06", "an old kernel's default of 128: a changed default, named",
         Somaxconn(8, 64, 8, 4, 4, 12, 9, 3, 128), P, ("before Linux 5.4",)),
    Case("K06", "the backlog asked for is kept: no cap",
         Somaxconn(8, 64, 64, 4, 4, 12, 12, 0, 4096), R, ("limit of 64",)),
    Case("K06", "the limit reads capped but the queue took every client",
         Somaxconn(8, 64, 8, 4, 4, 12, 12, 0, 4096), R, ("12 completed",)),
    Case("K06", "no listener record", Somaxconn(8, 64, None, 4, None, 12, 0, 0, None), R),
]

TRIES = (ReuseDelayTry(0, 100, None, "EADDRNOTAVAIL"), ReuseDelayTry(1, 100, 0.111, "EADDRNOTAVAIL"),
         ReuseDelayTry(1, 500, 0.524, "EADDRNOTAVAIL"), ReuseDelayTry(1, 1000, 1.010, "EADDRNOTAVAIL"))
CASES += [
    Case("K08", "as measured: each reuse just after its delay, none with reuse off",
         TwReuseDelay(TRIES, 2.0, 1000), C, ("after 111 ms", "at most 300 ms after")),
    Case("K08", "a reuse 295 ms late is still at the delay (tolerance 300 ms)",
         TwReuseDelay((ReuseDelayTry(1, 500, 0.795, ""),), 2.0, 1000), C, ("795 ms",)),
    Case("K08", "a reuse 320 ms late: later than the tolerance",
         TwReuseDelay((ReuseDelayTry(1, 500, 0.820, ""),), 2.0, 1000), P, ("820 ms",)),
    Case("K08", "the default is not 1000 ms",
         TwReuseDelay(TRIES, 2.0, 2000), P, ("default 2000 ms",)),
    Case("K08", "a TIME_WAIT taken over before its delay",
         TwReuseDelay((ReuseDelayTry(1, 500, 0.300, ""),), 2.0, 1000), R, ("300 ms",)),
    Case("K08", "reuse on, never taken over",
         TwReuseDelay((ReuseDelayTry(1, 100, None, "EADDRNOTAVAIL"),), 2.0, 1000), R,
         ("not taken over in 2.0 s",)),
    Case("K08", "reuse off, taken over all the same",
         TwReuseDelay((ReuseDelayTry(0, 100, 0.12, ""), ReuseDelayTry(1, 100, 0.11, "")), 2.0,
                      1000), R),
    Case("K08", "nothing tried", TwReuseDelay((), 2.0, None), R),
]

KEPT = ResetInTimeWait(1, 1.0, "TIME_WAIT", None, 0.0001)
KILLED = ResetInTimeWait(0, 1.0, None, 0.0001, 0.0001)
CASES += [
    Case("K09", "as measured: 1 ignores the reset, 0 lets it end the TIME_WAIT",
         Rfc1337((KEPT, KILLED), 0), P, ("still TIME_WAIT 1.0 s later", "ended 0.1 ms",
                                          "reverse of the document")),
    Case("K09", "both settings keep the TIME_WAIT, as the document's wording has it",
         Rfc1337((KEPT, ResetInTimeWait(0, 1.0, "TIME_WAIT", None, 0.0001)), 0), C),
    Case("K09", "1 keeps it, 0 too, but the default is 1",
         Rfc1337((KEPT, ResetInTimeWait(0, 1.0, "TIME_WAIT", None, 0.0001)), 1), P),
    Case("K09", "with 1 the reset ends the TIME_WAIT too",
         Rfc1337((ResetInTimeWait(1, 1.0, None, 0.0001, 0.0001), KILLED), 0), R,
         ("ended 0.1 ms",)),
    Case("K09", "the control was not reset: the forged reset shows nothing",
         Rfc1337((ResetInTimeWait(1, 1.0, "TIME_WAIT", None, None),
                  ResetInTimeWait(0, 1.0, "TIME_WAIT", None, None)), 0), R,
         ("did not reset its ESTABLISHED control",)),
    Case("K09", "nothing measured", Rfc1337((), None), R, ("not measured",)),
]

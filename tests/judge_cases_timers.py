"""Cases for the judges in tcplab.judges.timers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from judge_case import Case
from tcplab.judges.timers import (
    CloseWaitBound,
    FinWait2Lifetimes,
    KeepaliveClearsCloseWait,
    KeepaliveRule,
    LingerAbort,
    LoweredKeepalive,
    TimeWaitAndFinTimeout,
)
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED
CW, EST, FW2_STATE, TW = "CLOSE_WAIT", "ESTABLISHED", "FIN_WAIT2", "TIME_WAIT"

CW_BOUND = CloseWaitBound(
    bare_timer="off", bare_timer_s=0.0, bare_after=CW, observed_s=4.1,
    keepalive_timer="keepalive", keepalive_timer_s=7199.6, keepalive_time_sysctl=7200,
    pile=20, piled_leaking=20, piled_closing=0)
#: as on Linux: silent peers dropped on time, the closing peer's CLOSE_WAIT failed with EPIPE
#: by the first probe after its orphan went, the bare and live-peer sockets untouched
CLEARED = KeepaliveClearsCloseWait(
    low_total_s=2, low_cleared_s=2.05, high_total_s=4, high_cleared_s=4.1, low_errno="ETIMEDOUT",
    bare_timer="off", bare_after=CW, closing_idle_s=2, closing_total_s=4, closing_linger2_s=1,
    closing_cleared_s=2.01, closing_errno="EPIPE", live_total_s=3, live_after=CW,
    observed_s=5.6)
RULE = KeepaliveRule(
    idle_s=1, interval_s=1, probes=3, detected_s=4.05, errno="ETIMEDOUT", probes_seen=3,
    default_time_s=7200, default_interval_s=75, default_probes=9, bare_timer="off",
    bare_after=EST)
LOWERED = LoweredKeepalive(replace(RULE, idle_s=2, probes=2, detected_s=4.03, probes_seen=2),
                           own_idle_s=600, own_idle_timer_s=596.0)
FW2 = FinWait2Lifetimes(
    fin_timeout_s=3, orphan_timer="timewait", orphan_lifetime_s=3.02, linger2_s=1,
    linger2_lifetime_s=1.01, half_timer="off", half_after=FW2_STATE, half_observed_s=4.5)
LINGER = LingerAbort(
    aborted_states=(EST, "CLOSED", None), graceful_state=TW, resets_sent=2, peer_dropped=True,
    peer_errno="ECONNRESET", bytes_queued=200000, bytes_delivered=70000)


def lowered(**kw: Any) -> LoweredKeepalive:
    return replace(LOWERED, rule=replace(LOWERED.rule, **kw))


CASES = [
    # C22
    Case("C22", "no timer, still there; keepalive 2 h away; piles only against a leaking app",
         CW_BOUND, C, ("timer off", "7199.60 s", "20 of 20", "0 of 20", "only where")),
    Case("C22", "a peer piles CLOSE_WAIT up even against an application that closes",
         replace(CW_BOUND, piled_closing=20), C, ("20 of 20 against one that closes",)),
    Case("C22", "CLOSE_WAIT has a timer of its own, 60 s",
         replace(CW_BOUND, bare_timer="keepalive", bare_timer_s=60.0), R, ("60.0 s left",)),
    Case("C22", "a CLOSE_WAIT timer of its own of exactly two hours: still at least two hours",
         replace(CW_BOUND, bare_timer="keepalive", bare_timer_s=7200.0), C),
    Case("C22", "the socket left CLOSE_WAIT during the watch",
         replace(CW_BOUND, bare_after=None), R,
         ("gone after 4.10 s",)),
    Case("C22", "keepalive's default first probe is only 30 min away",
         replace(CW_BOUND, keepalive_timer_s=1800.0, keepalive_time_sysctl=1800), R,
         ("shorter than two hours",)),
    Case("C22", "keepalive timer just inside the tolerance",
         replace(CW_BOUND, keepalive_timer_s=7140.5), C),
    Case("C22", "keepalive timer just outside the tolerance",
         replace(CW_BOUND, keepalive_timer_s=7139.5), R),
    Case("C22", "keepalive timer not reported: no bound from it",
         replace(CW_BOUND, keepalive_timer=None, keepalive_timer_s=None), C, ("not scheduled",)),
    Case("C22", "the pile did not hold", replace(CW_BOUND, piled_leaking=12), R, ("12 of 20",)),
    # C23
    Case("C23", "as on Linux: cleared on time, sooner when lower; a closing peer's CLOSE_WAIT "
         "failed with EPIPE at the first probe; bare socket untouched, a live peer keeps it",
         CLEARED, P, ("2.05 s", "4.10 s", "2.01 s after the peer's close", "EPIPE",
                      "cleared only when the socket set SO_KEEPALIVE", "a live peer")),
    Case("C23", "a peer that closed also keeps it (its FIN_WAIT2 never ends): both conditions",
         replace(CLEARED, closing_cleared_s=None, closing_errno=None), P,
         ("SO_KEEPALIVE and the peer is silent",)),
    Case("C23", "sockets without SO_KEEPALIVE are cleared too, but a closing peer keeps it",
         replace(CLEARED, bare_after="CLOSED", bare_timer="keepalive", closing_cleared_s=None),
         P, ("cleared only when the peer is silent",)),
    Case("C23", "other stacks: every socket is probed and a closing peer's goes too",
         replace(CLEARED, bare_after="CLOSED", bare_timer="keepalive"), C),
    Case("C23", "a live peer's CLOSE_WAIT staying is a note, not a condition",
         replace(CLEARED, bare_after="CLOSED", bare_timer="keepalive", live_after=CW), C,
         ("stayed CLOSE_WAIT",)),
    Case("C23", "closing peer's socket still there but the watch ended before its setting ran "
         "out: not a condition", replace(CLEARED, bare_after="CLOSED", bare_timer="keepalive",
                                         closing_cleared_s=None, observed_s=4.9), C),
    Case("C23", "keepalive never cleared CLOSE_WAIT",
         replace(CLEARED, low_cleared_s=None, high_cleared_s=None), R, ("never (still there)",)),
    Case("C23", "the lower setting was not sooner",
         replace(CLEARED, low_total_s=4, low_cleared_s=4.1), R),
    Case("C23", "the lower setting cleared just too late (+1.0 s is the limit)",
         replace(CLEARED, low_cleared_s=3.05), R),
    Case("C23", "just inside the early limit", replace(CLEARED, low_cleared_s=1.71), P),
    # C34
    Case("C34", "rule holds, defaults as claimed, a socket without SO_KEEPALIVE untouched "
         "(the articles say the settings apply when keepalive is enabled)",
         RULE, C, ("4.05 s", "11.25 min", "only sockets with SO_KEEPALIVE")),
    Case("C34", "rule holds, defaults as claimed, even a socket without SO_KEEPALIVE dropped",
         replace(RULE, bare_after="CLOSED", bare_timer="keepalive"), C),
    Case("C34", "defaults differ (intvl 30 s)",
         replace(RULE, default_interval_s=30, bare_after="CLOSED", bare_timer="keepalive"), P,
         ("the figures differ",)),
    Case("C34", "the kernel never gave up", replace(RULE, detected_s=9.0, errno=None), R,
         ("no error",)),
    Case("C34", "too many probes before the drop", replace(RULE, probes_seen=5), R),
    Case("C34", "defaults not read",
         replace(RULE, default_time_s=None, default_interval_s=None, default_probes=None), P,
         ("not read",)),
    # C35
    Case("C35", "lowered sysctls drop it at 4 s; a socket without SO_KEEPALIVE untouched",
         LOWERED, P, ("4.03 s", "7875 s", "34 s", "596.00 s", "only sockets with SO_KEEPALIVE")),
    Case("C35", "other stacks: lowered sysctls drop every socket, keepalive or not",
         lowered(bare_after="CLOSED", bare_timer="keepalive"), C),
    Case("C35", "the lowered sysctls were not applied: dropped much later",
         lowered(detected_s=None, errno=None, probes_seen=0), R),
    Case("C35", "the lowered settings are not lower than the defaults",
         lowered(default_time_s=1, default_interval_s=1, default_probes=1), R),
    # C25
    Case("C25", "the orphan times out, the shut-down socket holds FIN_WAIT2 without a timer",
         FW2, P, ("3.02 s", "timer off", "only a socket")),
    Case("C25", "other stacks: no FIN_WAIT2 times out, not even an orphan's",
         replace(FW2, orphan_timer="off", orphan_lifetime_s=None), C),
    Case("C25", "every FIN_WAIT2 times out, even the one only shut down",
         replace(FW2, half_timer="timewait", half_after=None), R, ("every FIN_WAIT2",)),
    # C26
    Case("C26", "the closed socket follows tcp_fin_timeout", FW2, C, ("3.02 s",)),
    Case("C26", "just inside the tolerance", replace(FW2, orphan_lifetime_s=3.99), C),
    Case("C26", "just outside the tolerance", replace(FW2, orphan_lifetime_s=4.01), R),
    Case("C26", "the closed socket stays forever",
         replace(FW2, orphan_timer="off", orphan_lifetime_s=None), R, ("never (still there)",)),
    # C27
    Case("C27", "TIME_WAIT is 60 s whatever tcp_fin_timeout",
         TimeWaitAndFinTimeout(3, (59.9, 59.8), 60, 59.9), R, ("0 of 2 changed",)),
    Case("C27", "TIME_WAIT follows tcp_fin_timeout",
         TimeWaitAndFinTimeout(3, (2.9, 2.9), 60, 59.9), C, ("2 of 2 changed",)),
    Case("C27", "only the late orphan's TIME_WAIT changed",
         TimeWaitAndFinTimeout(3, (59.9, 2.9), 60, 59.9), P),
    Case("C27", "no fresh-namespace reference", TimeWaitAndFinTimeout(3, (59.9,), None, None), R,
         ("not measured",)),
    # C36
    Case("C36", "no TIME_WAIT, RST, ECONNRESET, data lost", LINGER, C,
         ("never TIME_WAIT", "130000 lost")),
    Case("C36", "the aborting end still entered TIME_WAIT",
         replace(LINGER, aborted_states=(EST, TW, None)), R),
    Case("C36", "everything queued was delivered before the reset",
         replace(LINGER, bytes_delivered=200000), R, ("0 lost",)),
    Case("C36", "the peer saw an orderly end-of-file, no reset",
         replace(LINGER, resets_sent=0, peer_dropped=False, peer_errno=None), R, ("0 RST",)),
]

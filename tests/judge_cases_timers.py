"""Cases for the judges in tcplab.judges.timers."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.timers import (
    CloseWaitBound,
    FinWait2Lifetimes,
    KeepaliveClearsCloseWait,
    KeepaliveDefaults,
    LingerAbort,
    LoweredKeepalive,
    TimeWaitAndFinTimeout,
)
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED
CW, EST, FW2, TW = "CLOSE_WAIT", "ESTABLISHED", "FIN_WAIT2", "TIME_WAIT"


def cw_bound(**kw: object) -> CloseWaitBound:
    base: dict[str, object] = dict(
        bare_timer="off", bare_timer_s=0.0, bare_after=CW, observed_s=4.1,
        keepalive_timer="keepalive", keepalive_timer_s=7199.6, keepalive_time_sysctl=7200,
        pile=20, piled_leaking=20, piled_closing=0)
    base.update(kw)
    return CloseWaitBound(**base)  # type: ignore[arg-type]


def cleared(**kw: object) -> KeepaliveClearsCloseWait:
    base: dict[str, object] = dict(
        low_total_s=2, low_cleared_s=2.05, high_total_s=4, high_cleared_s=4.1,
        low_errno="ETIMEDOUT", bare_timer="off", bare_after=CW, live_total_s=3,
        live_after=CW, observed_s=5.2)
    base.update(kw)
    return KeepaliveClearsCloseWait(**base)  # type: ignore[arg-type]


def defaults(**kw: object) -> KeepaliveDefaults:
    base: dict[str, object] = dict(
        idle_s=1, interval_s=1, probes=3, detected_s=4.05, errno="ETIMEDOUT", probes_seen=3,
        default_time_s=7200, default_interval_s=75, default_probes=9, bare_timer="off",
        bare_after=EST)
    base.update(kw)
    return KeepaliveDefaults(**base)  # type: ignore[arg-type]


def lowered(**kw: object) -> LoweredKeepalive:
    base: dict[str, object] = dict(
        time_s=2, interval_s=1, probes=2, detected_s=4.03, errno="ETIMEDOUT", probes_seen=2,
        default_time_s=7200, default_interval_s=75, default_probes=9, bare_timer="off",
        bare_after=EST, own_idle_timer_s=596.0)
    base.update(kw)
    return LoweredKeepalive(**base)  # type: ignore[arg-type]


def fw2(**kw: object) -> FinWait2Lifetimes:
    base: dict[str, object] = dict(
        fin_timeout_s=3, orphan_timer="timewait", orphan_lifetime_s=3.02, linger2_s=1,
        linger2_lifetime_s=1.01, half_timer="off", half_after=FW2, half_observed_s=4.5)
    base.update(kw)
    return FinWait2Lifetimes(**base)  # type: ignore[arg-type]


def linger(**kw: object) -> LingerAbort:
    base: dict[str, object] = dict(
        aborted_states=(EST, "CLOSED", None), graceful_state=TW, resets_sent=2,
        peer_dropped=True, peer_errno="ECONNRESET", bytes_queued=200000, bytes_delivered=70000)
    base.update(kw)
    return LingerAbort(**base)  # type: ignore[arg-type]


CASES = [
    # C22
    Case("C22", "no timer, still there; keepalive 2 h away; piles only against a leaking app",
         cw_bound(), C, ("timer off", "7199.60 s", "20 of 20", "0 of 20", "only where")),
    Case("C22", "a peer piles CLOSE_WAIT up even against an application that closes",
         cw_bound(piled_closing=20), C, ("20 of 20 against one that closes",)),
    Case("C22", "CLOSE_WAIT has a timer of its own, 60 s",
         cw_bound(bare_timer="keepalive", bare_timer_s=60.0), R, ("60.0 s left",)),
    Case("C22", "a CLOSE_WAIT timer of its own of exactly two hours: still at least two hours",
         cw_bound(bare_timer="keepalive", bare_timer_s=7200.0), C),
    Case("C22", "the socket left CLOSE_WAIT during the watch", cw_bound(bare_after=None), R,
         ("gone after 4.10 s",)),
    Case("C22", "keepalive's default first probe is only 30 min away",
         cw_bound(keepalive_timer_s=1800.0, keepalive_time_sysctl=1800), R,
         ("shorter than two hours",)),
    Case("C22", "keepalive timer just inside the tolerance",
         cw_bound(keepalive_timer_s=7140.5), C),
    Case("C22", "keepalive timer just outside the tolerance",
         cw_bound(keepalive_timer_s=7139.5), R),
    Case("C22", "keepalive timer not reported: no bound from it", cw_bound(
        keepalive_timer=None, keepalive_timer_s=None), C, ("not scheduled",)),
    Case("C22", "the pile did not hold", cw_bound(piled_leaking=12), R, ("12 of 20",)),
    # C23
    Case("C23", "cleared on time, sooner when lower; bare and live-peer sockets untouched",
         cleared(), P, ("2.05 s", "4.10 s", "SO_KEEPALIVE and the peer no longer answers")),
    Case("C23", "a live peer keeps it, but sockets without SO_KEEPALIVE are cleared too",
         cleared(bare_after="CLOSED", bare_timer="keepalive"), P, ("the peer no longer answers",)),
    Case("C23", "every socket is cleared, keepalive or not, answering peer or not",
         cleared(bare_after="CLOSED", bare_timer="keepalive", live_after="CLOSED"), C),
    Case("C23", "keepalive never cleared CLOSE_WAIT",
         cleared(low_cleared_s=None, high_cleared_s=None), R, ("never (still there)",)),
    Case("C23", "the lower setting was not sooner",
         cleared(low_total_s=4, low_cleared_s=4.1), R),
    Case("C23", "the lower setting cleared just too late (+1.0 s is the limit)",
         cleared(low_cleared_s=3.05), R),
    Case("C23", "just inside the early limit", cleared(low_cleared_s=1.71), P),
    # C34
    Case("C34", "rule holds, defaults as claimed, a socket without SO_KEEPALIVE untouched "
         "(the articles say the settings apply when keepalive is enabled)",
         defaults(), C, ("4.05 s", "11.25 min", "only sockets with SO_KEEPALIVE")),
    Case("C34", "rule holds, defaults as claimed, even a socket without SO_KEEPALIVE dropped",
         defaults(bare_after="CLOSED", bare_timer="keepalive"), C),
    Case("C34", "defaults differ (intvl 30 s)",
         defaults(default_interval_s=30, bare_after="CLOSED", bare_timer="keepalive"), P,
         ("the figures differ",)),
    Case("C34", "the kernel never gave up", defaults(detected_s=9.0, errno=None), R,
         ("no error",)),
    Case("C34", "too many probes before the drop", defaults(probes_seen=5), R),
    Case("C34", "defaults not read", defaults(default_time_s=None, default_interval_s=None,
                                               default_probes=None), P, ("not read",)),
    # C35
    Case("C35", "lowered sysctls drop it at 4 s; a socket without SO_KEEPALIVE untouched",
         lowered(), P, ("4.03 s", "7875 s", "34 s", "596.00 s")),
    Case("C35", "lowered sysctls drop every socket, keepalive or not",
         lowered(bare_after="CLOSED", bare_timer="keepalive"), C),
    Case("C35", "the lowered sysctls were not applied: dropped much later",
         lowered(detected_s=None, errno=None, probes_seen=0), R),
    Case("C35", "the lowered settings are not lower than the defaults",
         lowered(default_time_s=1, default_interval_s=1, default_probes=1), R),
    # C25
    Case("C25", "the orphan times out, the shut-down socket holds FIN_WAIT2 without a timer",
         fw2(), P, ("3.02 s", "timer off", "only a socket")),
    Case("C25", "no FIN_WAIT2 times out", fw2(orphan_timer="off", orphan_lifetime_s=None), C),
    Case("C25", "every FIN_WAIT2 times out, even the one only shut down",
         fw2(half_timer="timewait", half_after=None), R, ("every FIN_WAIT2",)),
    # C26
    Case("C26", "the closed socket follows tcp_fin_timeout", fw2(), C, ("3.02 s",)),
    Case("C26", "just inside the tolerance", fw2(orphan_lifetime_s=3.99), C),
    Case("C26", "just outside the tolerance", fw2(orphan_lifetime_s=4.01), R),
    Case("C26", "the closed socket stays forever", fw2(orphan_timer="off", orphan_lifetime_s=None),
         R, ("never (still there)",)),
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
    Case("C36", "no TIME_WAIT, RST, ECONNRESET, data lost", linger(), C,
         ("never TIME_WAIT", "130000 lost")),
    Case("C36", "the aborting end still entered TIME_WAIT",
         linger(aborted_states=(EST, TW, None)), R),
    Case("C36", "everything queued was delivered before the reset",
         linger(bytes_delivered=200000), R, ("0 lost",)),
    Case("C36", "the peer saw an orderly end-of-file, no reset",
         linger(resets_sent=0, peer_dropped=False, peer_errno=None), R, ("0 RST",)),
]

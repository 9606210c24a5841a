"""Cases for the judges in tcplab.judges.tuning (C28, C29, C30, C32, C33)."""

from __future__ import annotations

from judge_case import Case
from tcplab.judges.tuning import SynBacklog, SynCookies, TwBuckets, TwRecycle, TwReuse
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED
ADDR = "EADDRNOTAVAIL"


def reuse(off: float | None = None, on: float | None = 1.02, lo: float | None = 1.02,
          other: float | None = None, stamps: float | None = None, default: int = 2,
          ts_default: int = 1) -> TwReuse:
    return TwReuse(2.0, off, on, ADDR, lo, other, stamps, 0.22, default, 1000, ts_default)


SYNFLOOD = "TCP: request_sock_TCP: Possible SYN flooding on port 127.0.0.1:40000. Sending cookies."


def buckets(time_wait: int = 5, skipped: int = 15, warnings: tuple[str, ...] = (),
            control: str | None = SYNFLOOD, default: int = 131072) -> TwBuckets:
    return TwBuckets(5, 20, time_wait, skipped, skipped, control, warnings, default, 2 * default)


def cookies(setting: int = 1, syn_recv: int = 128, sent: int = 72, legit: int = 8,
            default: int = 1) -> SynCookies:
    return SynCookies(setting, 200, 128, syn_recv, sent, 200, 8, legit, default)


def backlog(cookies_on: int = 0, wide: int = 48, narrow: int = 16, narrow_backlog: int = 16,
            default: int = 2048, default_cookies: int = 1) -> SynBacklog:
    return SynBacklog(cookies_on, 64, 128, wide, narrow_backlog, narrow, default, default_cookies)


CASES = [
    # C28
    Case("C28", "this kernel: reuse after the 1 s delay, default 2 (loopback only)",
         reuse(), P, ("after 1.02 s", "not 0", "4.18", "an address outside 127/8 never")),
    Case("C28", "an old kernel: reuse works, default 0", reuse(default=0), C, ("tcp_tw_reuse=0",)),
    Case("C28", "reuse needs timestamps, which are on by default: a note, not a condition",
         reuse(default=0, stamps=None), C, ("on by default here",)),
    Case("C28", "reuse needs timestamps and this kernel has them off by default",
         reuse(default=0, ts_default=0), P, ("off by default",)),
    Case("C28", "reuse=1 never took over a TIME_WAIT", reuse(on=None), R, ("reuse=1 took over a "
                                                                             "TIME_WAIT never",)),
    Case("C28", "reuse=0 reused too: the setting changes nothing", reuse(off=0.0), R),
    # C29
    Case("C29", "this kernel: the tunable is gone, its neighbours are there",
         TwRecycle("6.18", False, True, None, "ENOENT"), OUT, ("4.12", "4396e46187ca", "ENOENT")),
    Case("C29", "an old kernel where recycling ends TIME_WAIT in 3.5 RTO, default 0",
         TwRecycle("4.9", True, True, 0, None, 0.7), C, ("0.70 s",)),
    Case("C29", "present and on, yet the TIME_WAIT stayed beyond the limit",
         TwRecycle("4.9", True, True, 0, None, None), R, ("more than 10 s",)),
    Case("C29", "present and recycling, but on by default",
         TwRecycle("4.9", True, True, 1, None, 0.7), P, ("default 1, not 0",)),
    Case("C29", "the whole ipv4 sysctl directory unreadable", TwRecycle("6.18", False, False, None,
                                                                        None), R),
    # C30
    Case("C30", "this kernel: capped, counter, no warning though the control was seen",
         buckets(), P, ("TCPTimeWaitOverflow +15", "2.6.38", "not 180000", "Possible SYN")),
    Case("C30", "an old kernel that printed the warning, default 180000",
         buckets(warnings=("TCP: time wait bucket table overflow",), default=180000), C,
         ("time wait bucket table overflow",)),
    Case("C30", "capped and warned, but the default differs",
         buckets(warnings=("TCP: time wait bucket table overflow",)), P, ("not 180000",)),
    Case("C30", "no warning and the log reader unproven: not judged, never confirmed",
         buckets(control=None, default=180000), P, ("not judged",)),
    Case("C30", "one TIME_WAIT more than the cap: not a cap", buckets(time_wait=6, skipped=14), R),
    Case("C30", "nothing skipped TIME_WAIT", buckets(time_wait=5, skipped=0), R),
    # C32
    Case("C32", "this kernel: 128 requests, 72 cookies, all 8 clients completed, default 1",
         cookies(), P, ("72 cookies", "8 of 8", "2.6.33")),
    Case("C32", "the queue's strict comparison lets one more in", cookies(syn_recv=129, sent=71), P),
    Case("C32", "an old kernel with default 0", cookies(default=0), C),
    Case("C32", "no cookies: the clients could not connect", cookies(sent=0, legit=0), R),
    Case("C32", "cookies went out but the other clients still failed", cookies(legit=3), R,
         ("3 of 8",)),
    Case("C32", "cookies before the queue was full", cookies(syn_recv=40, sent=160), R),
    Case("C32", "setting 2: a cookie for every SYN, clients complete",
         cookies(setting=2, syn_recv=0, sent=200), P, ("tcp_syncookies=2",)),
    Case("C32", "setting 2 but request sockets kept", cookies(setting=2, syn_recv=128, sent=72), R),
    # C33
    Case("C33", "cookies off: 3/4 of the sysctl, backlog binds first, cookies on by default",
         backlog(), P, ("3/4", "listen backlog bounds", "not 1024", "on by default")),
    Case("C33", "cookies on: the sysctl bounds nothing, the listen backlog does",
         backlog(cookies_on=1, wide=128), P, ("bounded nothing", "only counts with syncookies")),
    Case("C33", "cookies off: the sysctl bounds nothing", backlog(wide=128), R,
         ("bounded nothing",)),
    Case("C33", "an old kernel: the sysctl bounds, backlog above it, defaults 1024 and 0",
         backlog(wide=64, narrow=40, default=1024, default_cookies=0), C),
    Case("C33", "just inside: 3/4 of 64", backlog(wide=48, narrow=40, default=1024,
                                                  default_cookies=0), C),
    Case("C33", "just outside: one below 3/4", backlog(wide=47), R),
    Case("C33", "just outside: two above the sysctl", backlog(wide=66), R),
]

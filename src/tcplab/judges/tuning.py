"""Judges of the tuning claims: C28 (tcp_tw_reuse), C29 (tcp_tw_recycle), C30
(tcp_max_tw_buckets), C32 (tcp_syncookies), C33 (tcp_max_syn_backlog); articles 000, 002.

How a kernel change weighs, the same way for every claim here:

* the mechanism the claim is about is gone from this kernel (the tunable was removed):
  **outdated**, naming the version and the change;
* the mechanism holds, but a part the article states changed since a named kernel version
  (a default, a side effect such as a log line): **partly**, a wrong figure or detail, and
  the summary names the version and the change.

Defaults are read in a brand-new network namespace (what this kernel gives a namespace
nobody tuned) and compared exactly (tolerance 0): a default is a number, not a measurement
with noise. Kernel history cited below was checked against the commits named.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED


def _after(seconds: float | None) -> str:
    return "never" if seconds is None else f"after {seconds:.2f} s"


# -- C28: tcp_tw_reuse ------------------------------------------------------------------


@dataclass(frozen=True)
class TwReuse:
    """connect() retried while every usable local port is held by a TIME_WAIT to the same
    listener, one namespace per setting; ``*_after_s``: seconds from the first TIME_WAIT to
    the connect() that took one over (None: none did within ``window_s``)."""

    window_s: float
    off_after_s: float | None  # tcp_tw_reuse=0
    on_after_s: float | None  # tcp_tw_reuse=1
    on_first_try: str  # errno of the first try with reuse=1 (EADDRNOTAVAIL: it had to wait)
    loopback_only_lo_after_s: float | None  # reuse=2, to 127.0.0.1
    loopback_only_other_after_s: float | None  # reuse=2, to an address on lo outside 127/8
    no_timestamps_after_s: float | None  # reuse=1 with tcp_timestamps=0
    short_delay_after_s: float | None  # reuse=1 with tcp_tw_reuse_delay=200 (ms)
    default_reuse: int | None  # fresh namespace
    default_delay_ms: int | None
    default_timestamps: int | None


@judge("C28", C, P, R)
def c28(m: TwReuse) -> Judgement:
    """reuse=1 must let connect() take over a TIME_WAIT that reuse=0 keeps; default 0.

    tcp_twsk_unique (net/ipv4/tcp_ipv4.c) reuses only a TIME_WAIT that saw TCP timestamps
    and is older than tcp_tw_reuse_delay. Timestamps are on by default (both ends, on
    Linux), so that requirement is a note unless this kernel's default has them off; the
    delay (1 s by default, a sysctl since Linux 6.14, ca6a6f93867a) is a note: the claim
    does not promise reuse at once. The default 2 (loopback only) dates from Linux 4.18
    (79e9fed46038, "net-tcp: extend tcp_tw_reuse sysctl to enable loopback only
    optimization"); before it the default was 0, as the articles say."""
    works = m.on_after_s is not None
    blocks = m.off_after_s is None
    stamps_needed = m.no_timestamps_after_s is None
    stamps_off_by_default = m.default_timestamps == 0
    parts = [f"reuse=1 took over a TIME_WAIT {_after(m.on_after_s)} (first try {m.on_first_try}"
             f", default delay {m.default_delay_ms} ms; with 200 ms: "
             f"{_after(m.short_delay_after_s)}), reuse=0 {_after(m.off_after_s)} within "
             f"{m.window_s:.0f} s",
             f"reuse=2: 127.0.0.1 {_after(m.loopback_only_lo_after_s)}, an address outside "
             f"127/8 {_after(m.loopback_only_other_after_s)}",
             f"without timestamps {_after(m.no_timestamps_after_s)}"
             + (" (reuse needs them; on by default here)" if stamps_needed
                and not stamps_off_by_default else ""),
             f"fresh-namespace default tcp_tw_reuse={m.default_reuse}"]
    if not (works and blocks):
        return Judgement(R, "; ".join(parts))
    wrong = []
    if m.default_reuse != 0:
        wrong.append(f"the default is {m.default_reuse}, not 0 (2, loopback only, since Linux "
                     f"4.18, commit 79e9fed46038)")
    if stamps_needed and stamps_off_by_default:
        wrong.append("reuse needs TCP timestamps, and they are off by default here")
    return Judgement(P if wrong else C, "; ".join(parts + wrong))


# -- C29: tcp_tw_recycle ----------------------------------------------------------------


@dataclass(frozen=True)
class TwRecycle:
    """Is the tunable there; if so, its default and how long a TIME_WAIT lasted with it on."""

    kernel: str
    present: bool  # /proc/sys/net/ipv4/tcp_tw_recycle exists in a fresh namespace
    neighbours_present: bool  # tcp_tw_reuse and tcp_max_tw_buckets do: the directory is there
    default: int | None
    write_error: str | None  # what opening it to set it met, when absent
    #: with tcp_tw_recycle=1 (and timestamps): seconds a client-side TIME_WAIT lasted
    #: (None: not measured, or still there after ``limit_s``)
    time_wait_s: float | None = None
    limit_s: float = 10.0


@judge("C29", C, P, R, OUT)
def c29(m: TwRecycle) -> Judgement:
    """Removed in Linux 4.12 (commit 4396e46187ca "tcp: remove tcp_tw_recycle"): absent
    means outdated. Where present, recycling must end a TIME_WAIT well before the usual
    60 s (3.5 RTO with timestamps: well under ``limit_s``), with default 0."""
    if not m.present:
        if not m.neighbours_present:
            return Judgement(R, f"Linux {m.kernel}: neither tcp_tw_recycle nor its neighbours "
                                f"are readable here: the sysctl tree could not be read, so nothing was measured")
        return Judgement(OUT, f"Linux {m.kernel} has no tcp_tw_recycle (setting it fails: "
                            f"{m.write_error}), while tcp_tw_reuse and tcp_max_tw_buckets are "
                            f"there: removed in Linux 4.12, commit 4396e46187ca")
    recycled = m.time_wait_s is not None and m.time_wait_s < m.limit_s
    summary = (f"Linux {m.kernel} has tcp_tw_recycle (default {m.default}); with it on a "
               f"TIME_WAIT lasted " + (f"{m.time_wait_s:.2f} s" if recycled and m.time_wait_s
                                        is not None else f"more than {m.limit_s:.0f} s"))
    if not recycled:
        return Judgement(R, summary)
    return Judgement(C if m.default == 0 else P, summary + (
        "" if m.default == 0 else f"; default {m.default}, not 0"))


# -- C30: tcp_max_tw_buckets ------------------------------------------------------------


@dataclass(frozen=True)
class TwBuckets:
    """Active closes beyond a small cap, the kernel log meanwhile, and the default.

    ``control_line``: a kernel TCP message provoked on purpose before the closes (the
    SYN-flood notice of tcp_syn_flood_action, printed through net_ratelimit at info level,
    as the old overflow warning was), read back by the same log reader: it proves the
    reader sees this kernel's TCP messages, so "no warning" means the kernel printed none."""

    cap: int
    closes: int
    time_wait: int  # TIME_WAIT sockets sock_diag lists afterwards
    skipped: int  # closers that went straight to CLOSED
    overflow_counter: int  # TcpExt.TCPTimeWaitOverflow increase
    control_line: str | None
    warnings: tuple[str, ...]  # log lines about the time-wait table meanwhile
    default: int | None
    ehash_entries: int | None


ARTICLE_TW_BUCKETS = 180000


@judge("C30", C, P, R)
def c30(m: TwBuckets) -> Judgement:
    """Exactly ``cap`` TIME_WAITs kept, the others skip TIME_WAIT; a warning; 180000.

    Since Linux 2.6.38 (commit 67631510a318, "tcp: Replace time wait bucket msg by
    counter") the kernel logs nothing and counts TCPTimeWaitOverflow instead
    (tcp_time_wait in net/ipv4/tcp_minisocks.c). 180000 was tcp_init's figure for large
    machines until commit c5ed63d66f24 ("tcp: fix three tcp sysctls tuning", 2010) made it
    half the established-hash size."""
    capped = m.time_wait == m.cap and m.skipped == m.closes - m.cap > 0
    derived = (m.ehash_entries is not None and m.default is not None
               and m.ehash_entries == 2 * m.default)
    parts = [f"cap {m.cap}: {m.time_wait} TIME_WAITs after {m.closes} active closes, "
             f"{m.skipped} closers skipped TIME_WAIT, TCPTimeWaitOverflow +{m.overflow_counter}"]
    if m.warnings:
        parts.append(f"kernel log: {m.warnings[0]!r}")
    elif m.control_line is not None:
        parts.append(f"no kernel log line about it, though the same reader saw the kernel's "
                     f"{m.control_line!r}")
    else:
        parts.append("no kernel log line, and the reader's control message was not seen "
                     "either: the warning is not judged")
    parts.append(f"fresh-namespace default {m.default}"
                 + (f" (half the {m.ehash_entries}-entry established hash)" if derived else ""))
    if not capped:
        return Judgement(R, "; ".join(parts))
    wrong = []
    if not m.warnings:
        wrong.append("no warning is printed any more: a counter since Linux 2.6.38 "
                     "(67631510a318)" if m.control_line is not None else "warning unproven")
    if m.default != ARTICLE_TW_BUCKETS:
        wrong.append(f"the default is {m.default}, not {ARTICLE_TW_BUCKETS} (computed from "
                     f"the hash size since c5ed63d66f24)")
    return Judgement(P if wrong else C, "; ".join(parts + wrong))


# -- C32: tcp_syncookies ----------------------------------------------------------------


@dataclass(frozen=True)
class SynCookies:
    """A burst of SYNs whose handshakes never complete (a SYN flood) at a listener, then
    other clients, from another address, connecting while the flood's requests wait."""

    setting: int  # tcp_syncookies in this run's namespace
    attempts: int  # flood SYNs
    listen_backlog: int
    syn_recv: int  # request sockets the flood left
    cookies_sent: int  # TcpExt.SyncookiesSent during the flood
    answered: int  # flood clients that got a SYN-ACK (ESTABLISHED on their side)
    legit_tried: int
    legit_completed: int  # of them, in the listener's accept queue
    default: int | None  # fresh namespace


@judge("C32", C, P, R)
def c32(m: SynCookies) -> Judgement:
    """Cookies go out once the SYN queue is full, and real clients still connect; default 0.

    With setting 1 the first listen-backlog SYNs must get request sockets and every later
    one a cookie (tcp_conn_request, net/ipv4/tcp_input.c); setting 2 (not the articles')
    cookies every SYN, so such a run speaks only to the resistance and the default. The
    default has been 1 since Linux 2.6.33 (commit e994b7c901de, "tcp: Don't make syn
    cookies initial setting depend on CONFIG_SYSCTL")."""
    beyond = m.attempts - m.syn_recv
    if m.setting == 2:
        cookies = m.syn_recv == 0 and m.cookies_sent == m.attempts > 0
        how = (f"tcp_syncookies=2 (not the articles' setting): {m.cookies_sent} of {m.attempts} "
               f"SYNs got a cookie, {m.syn_recv} request sockets kept")
    else:
        full = m.listen_backlog <= m.syn_recv <= m.listen_backlog + 1
        cookies = full and m.cookies_sent == beyond > 0
        how = (f"tcp_syncookies={m.setting}: the SYN queue took {m.syn_recv} requests "
               f"(listen backlog {m.listen_backlog}), then {m.cookies_sent} cookies went to "
               f"the other {beyond} SYNs")
    resisted = m.legit_tried > 0 and m.legit_completed == m.legit_tried
    summary = (f"{how}; {m.answered} of {m.attempts} flood clients got a SYN-ACK; during the "
               f"flood {m.legit_completed} of {m.legit_tried} other clients completed their "
               f"handshake; fresh-namespace default {m.default}")
    if not (cookies and resisted):
        return Judgement(R, summary)
    if m.default != 0:
        return Judgement(P, summary + f" (the default is {m.default}, not 0; it has been 1 "
                                      "since Linux 2.6.33, e994b7c901de)")
    return Judgement(C, summary)


# -- C33: tcp_max_syn_backlog -----------------------------------------------------------


@dataclass(frozen=True)
class SynBacklog:
    """Half-open connections (final ACKs dropped) that wait at two listeners: one whose
    listen backlog is above tcp_max_syn_backlog (``wide``), one below it (``narrow``)."""

    syncookies: int
    max_syn_backlog: int
    wide_backlog: int
    wide_syn_recv: int
    narrow_backlog: int
    narrow_syn_recv: int
    default: int | None  # fresh namespace
    default_syncookies: int | None


ARTICLE_MAX_SYN_BACKLOG = 1024


@judge("C33", C, P, R)
def c33(m: SynBacklog) -> Judgement:
    """Does the sysctl bound the SYN_RECV requests, and does anything else bound them first?

    Without cookies tcp_conn_request drops a new peer's SYN once fewer than a quarter of
    tcp_max_syn_backlog is left, so the bound is 3/4 to all of it (inclusive, +1 for the
    kernel's strict comparison). With cookies on it reads the sysctl not at all, and the
    listen backlog (capped by somaxconn) bounds the SYN queue in every setting: since
    Linux 4.4 (commit ef547f2ac16b, "tcp: remove max_qlen_log") the queue is no longer sized
    by min(backlog, tcp_max_syn_backlog). A cookies-on run cannot refute the claim (the
    sysctl is off duty there by design), only show the condition. Default: max(128,
    established-hash entries / 128) since c5ed63d66f24 (2010; /256 then), not 1024."""
    n = m.max_syn_backlog
    by_sysctl = m.wide_backlog > n + 1 and n - n // 4 <= m.wide_syn_recv <= n + 1
    by_backlog = m.narrow_backlog <= m.narrow_syn_recv <= m.narrow_backlog + 1
    summary = (f"tcp_syncookies={m.syncookies}, tcp_max_syn_backlog={n}: listen({m.wide_backlog}) "
               f"held {m.wide_syn_recv} half-open connections "
               + ("(bounded by the sysctl" + (", at 3/4 of it for peers not seen before)"
                                             if m.wide_syn_recv < n else ")")
                  if by_sysctl else "(the sysctl bounded nothing)")
               + f", listen({m.narrow_backlog}) held {m.narrow_syn_recv}"
               + (" (the listen backlog bounds them first)" if by_backlog else "")
               + f"; fresh-namespace defaults: tcp_max_syn_backlog={m.default}, "
                 f"tcp_syncookies={m.default_syncookies}")
    if m.syncookies == 0 and not by_sysctl:
        return Judgement(R, summary)
    conditions = []
    if not by_sysctl:
        conditions.append("it only counts with syncookies off")
    elif m.syncookies == 0 and m.default_syncookies != 0:
        conditions.append("it only counts with syncookies off, and they are on by default")
    if by_backlog:
        conditions.append("a smaller listen backlog bounds the queue whatever the sysctl")
    if m.default != ARTICLE_MAX_SYN_BACKLOG:
        conditions.append(f"the default is {m.default}, not {ARTICLE_MAX_SYN_BACKLOG}")
    return Judgement(P if conditions else C,
                     summary + (": " + "; ".join(conditions) if conditions else ""))

"""Judges of TIME_WAIT: how long it lasts (C11), what it guards (C13), what it costs (C15),
and what too many of them, or too few ports, do to new connections (C16, C31).

Kernel facts the rules rely on (torvalds/linux):

* ``include/net/tcp.h``: ``#define TCP_TIMEWAIT_LEN (60*HZ)``, "how long to wait to destroy
  TIME-WAIT state, about 60 seconds". Linux keeps no MSL; the length is this constant,
  unchanged since the 2.x kernels and set by no sysctl.
* ``net/ipv4/inet_hashtables.c`` ``__inet_check_established``: a connect() whose four-tuple
  is held by a TIME_WAIT may take it over only if ``tcp_twsk_unique`` agrees, which needs
  timestamps on the old connection and (for the port chosen by the kernel) tcp_tw_reuse.
* ``net/ipv4/af_inet.c`` ``inet_init_net``: ``ip_local_port_range`` defaults to 32768 60999
  since Linux 4.2 (commit 07f4c90062f8, "tcp/dccp: try to not exhaust ip_local_port_range
  in connect()", May 2015: an even-sized range, so connect() can favour even ports and
  leave odd ones to bind()); before that, 32768 61000 was the default on most machines (tcp_init sized it by memory in
  2.4 and early 2.6).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge, within
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED


# -- C11: how long TIME_WAIT lasts ---------------------------------------------------------

#: The figures the articles attach to a system this kernel can stand for.
#: seed 001: "on RHEL" TIME_WAIT lasts 60 s (Linux: judged as a point).
#: seed 002: 2 x MSL, MSL being 2 min (RFC 1122) or 30 s (BSD): any implementation's
#: TIME_WAIT lies between 1 and 4 minutes (judged as a range).
#: Not judged against this kernel: seed 002's "Windows: 4 minutes", and seed 000's "default
#: 240 s". Seed 000 names no system for its 240 s; our reading (a reader may disagree) is that
#: it is 2 x RFC 793's 2-minute MSL, which is also Windows' default, because seed 000 gives it
#: right after "2 x MSL" and then shortens it with Windows' TcpTimedWaitDelay registry key
#: (to 60) before it turns to Linux sysctls. C37 covers the Windows keys.
RHEL_S = 60.0
MSL_RANGE_S = (2 * 30.0, 2 * 120.0)
SEED_000_S = 240.0

#: How far a measured length may sit from a figure and still match it. The timer is read
#: a few milliseconds after TIME_WAIT starts, and the timer wheel fires a 60 s timer up to
#: one slot late: 512 ticks at HZ=250 (2.0 s), 4096 ticks at HZ=1000 (4.1 s).
TOLERANCE_S = 5.0


@dataclass(frozen=True)
class TimeWaitLength:
    """How long one client-first TIME_WAIT lasted."""

    #: seconds: the timer the kernel armed, read on entry, or the lifetime watched from
    #: entry until the kernel dropped the four-tuple; None if no TIME_WAIT timer was seen
    measured_s: float | None
    #: how ``measured_s`` was taken ("timer read on entry", "watched until dropped")
    how: str = "timer read on entry"
    #: for a watched lifetime, the timer the kernel reported on entry (None: not read)
    armed_s: float | None = None
    #: the state the active closer was in once it left FIN_WAIT1/FIN_WAIT2/CLOSING after
    #: the peer's FIN (None: the kernel no longer reported it)
    entered: str | None = "TIME_WAIT"


def _figures_read(t: float) -> str:
    """Which article figures C11 judges, and how seed 000's 240 s is read (so that a reader
    who reads it otherwise sees what our reading changes)."""
    return (f"Judged: seed 001's 60 s for RHEL (a point) and seed 002's 1-4 minutes (2 x an "
            f"MSL from BSD's 30 s to RFC 1122's 2 min, a range). Not judged: seed 000's "
            f"unqualified 'default 240 s', read here as 2 x RFC 793's 2-minute MSL, Windows' "
            f"default, because the article states it right after 2 x MSL and then shortens it "
            f"to 60 through Windows' TcpTimedWaitDelay before turning to Linux sysctls; read "
            f"as a Linux default it would be off by {abs(SEED_000_S - t):.0f} s")


@judge("C11", C, P, R)
def c11(m: TimeWaitLength) -> Judgement:
    """Confirmed if the length is RHEL's 60 s (seed 001), which is also 2 x BSD's 30 s MSL
    inside seed 002's 1-4 minutes; partly if it is another 2 x MSL inside 1-4 minutes (the
    mechanism holds, the Linux figure is wrong); refuted outside that range or unmeasured.
    Seed 000's 240 s is read as Windows' / RFC 793's figure and not judged (see above)."""
    low, high = MSL_RANGE_S
    t = m.measured_s
    armed = "" if m.armed_s is None else f", timer armed at {m.armed_s:.1f} s"
    tol = f"tolerance +-{TOLERANCE_S:.0f} s"
    if t is None:
        return Judgement(R, f"no TIME_WAIT length was measured ({m.how}): after the peer's "
                            f"FIN the active closer was {m.entered or 'gone'}, with no "
                            f"timewait timer")
    head = f"TIME_WAIT lasted {t:.1f} s ({m.how}{armed}; {tol})"
    in_range = low - TOLERANCE_S <= t <= high + TOLERANCE_S
    figures = _figures_read(t)
    if within(t, RHEL_S, TOLERANCE_S):
        return Judgement(C, f"{head}: seed 001's 60 s on RHEL matches; it is 2 x the 30 s BSD "
                            f"MSL, inside seed 002's 1-4 minutes. On Linux it is the constant "
                            f"TCP_TIMEWAIT_LEN, not derived from any MSL setting. {figures}")
    if in_range:
        return Judgement(P, f"{head}: inside seed 002's 1-4 minutes (2 x an MSL of "
                            f"{t / 2:.0f} s), but not seed 001's 60 s for Linux "
                            f"(mainline's TCP_TIMEWAIT_LEN). {figures}")
    return Judgement(R, f"{head}: outside 2 x MSL for any MSL from 30 s to 2 min "
                        f"({low:.0f}-{high:.0f} s) and not seed 001's 60 s. {figures}")


# -- C13: what keeps an old duplicate out of a new connection -------------------------------


@dataclass(frozen=True)
class SameTupleTry:
    """A new connection asked for the four-tuple a TIME_WAIT holds, and an old duplicate
    (a captured data segment of the old connection) injected where it would land."""

    #: how the new connection asked, and on what ("connect() on 192.0.2.1", ...)
    path: str
    tw_reuse: int | None
    timestamps: bool
    #: connect()'s first error while it was refused (EADDRNOTAVAIL); None: never refused
    errno: str | None
    #: seconds after TIME_WAIT began that a new connection took it over; None: none did
    #: within the probe's window
    taken_over_after_s: float | None
    #: whether the old segment's bytes entered the new connection (None: no new connection)
    stale_taken: bool | None = None
    #: the new ISN minus the old connection's last sequence number (65537 on a takeover)
    isn_gap: int | None = None


@dataclass(frozen=True)
class OldDuplicates:
    """The same experiment on several paths (each in a namespace of its own)."""

    tries: tuple[SameTupleTry, ...]
    #: seconds each path kept asking for the four-tuple before it counted as held
    window_s: float = 0.0


def _try_text(t: SameTupleTry) -> str:
    if t.taken_over_after_s is None:
        return f"{t.path}: refused ({t.errno or 'no error'}) while TIME_WAIT held the four-tuple"
    gap = "" if t.isn_gap is None else f", new ISN {t.isn_gap} past the old sequence space"
    fate = {True: "took the old duplicate in", False: "rejected the old duplicate",
            None: "the old duplicate was not offered"}[t.stale_taken]
    return f"{t.path}: TIME_WAIT taken over after {t.taken_over_after_s:.1f} s{gap}; {fate}"


@judge("C13", C, P, R)
def c13(m: OldDuplicates) -> Judgement:
    """Confirmed if TIME_WAIT held the four-tuple on every path tried (no new connection, so
    nothing to take an old duplicate); partly if on some path a new connection took the
    TIME_WAIT over yet rejected the old duplicate (then sequence numbers and timestamps kept
    it out, under conditions the articles leave out); refuted if an old duplicate entered a
    new connection, or nothing was measured."""
    if not m.tries:
        return Judgement(R, "no path was tried: nothing measured")
    text = "; ".join(_try_text(t) for t in m.tries) + f" (window {m.window_s:.1f} s)"
    over = [t for t in m.tries if t.taken_over_after_s is not None]
    if any(t.stale_taken is not False for t in over):
        return Judgement(R, text)
    if not over:
        return Judgement(C, text)
    held = [t.path for t in m.tries if t.taken_over_after_s is None]
    return Judgement(P, f"{text}. TIME_WAIT held the four-tuple only for "
                        f"{', '.join(held) or 'no path'}; where it was taken over, sequence "
                        f"numbers and timestamps kept the old duplicate out, not TIME_WAIT")


# -- C16: do TIME_WAIT / CLOSE_WAIT holders stop new connections? ---------------------------


@dataclass(frozen=True)
class HolderTry:
    """Every port of a narrowed ephemeral range held by one kind of socket, all towards
    listener A; then new connections to A are asked for, again and again, for a window."""

    #: "client TIME_WAIT", "client CLOSE_WAIT", "server TIME_WAIT" (the accept side)
    holders: str
    tw_reuse: int | None
    #: how many holders (the usable ports of the range)
    count: int
    #: the first error of a new connect() to A (None: none failed)
    errno: str | None
    #: new connections to A that opened within the window (at most ``count``)
    reopened: int
    #: seconds into the window when the last of them opened (None: none opened)
    reopened_after_s: float | None
    #: a connect() to listener B (another destination) from the same range: "ok" or errno
    other_destination: str | None
    #: the address both ends used: 127.0.0.1, or an address outside 127/8 put on ``lo``
    #: (tcp_tw_reuse=2 counts only loopback addresses as loopback: tcp_twsk_unique)
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class PortExhaustion:
    tries: tuple[HolderTry, ...]
    window_s: float = 0.0


def _blocked(t: HolderTry) -> bool:
    return t.reopened == 0 and t.errno == "EADDRNOTAVAIL"


def _loopback(address: str) -> bool:
    return address.startswith("127.")


def _holder_name(t: HolderTry) -> str:
    where = "loopback" if _loopback(t.address) else "off loopback"
    return f"{t.holders} on {t.address} ({where}, tcp_tw_reuse={t.tw_reuse})"


def _holder_text(t: HolderTry) -> str:
    head = f"{t.count} {_holder_name(t)}"
    if _blocked(t):
        return f"{head}: connect() to A refused ({t.errno}) all window; B {t.other_destination}"
    when = "" if t.reopened_after_s is None else f" within {t.reopened_after_s:.1f} s"
    first = f", first refused ({t.errno})" if t.errno else ""
    return f"{head}: {t.reopened} new connections to A opened{when}{first}; B {t.other_destination}"


def _default_reuse_loopback_only(m: PortExhaustion) -> bool:
    """Client TIME_WAITs under tcp_tw_reuse=2 blocked off loopback but not on loopback."""
    tw2 = [t for t in m.tries if t.holders == "client TIME_WAIT" and t.tw_reuse == 2]
    return (any(_blocked(t) and not _loopback(t.address) for t in tw2)
            and any(not _blocked(t) and _loopback(t.address) for t in tw2))


@judge("C16", C, P, R)
def c16(m: PortExhaustion) -> Judgement:
    """Confirmed if every kind of holder kept new connections out, to any destination and on
    the accept side too; partly if some holders did, but only towards the destination they
    hold, or only for some kinds / settings / addresses (the accept side; tcp_tw_reuse,
    whose default 2 takes client TIME_WAITs over towards loopback only: the same condition
    C13 and C28 weigh); refuted if no holder ever stopped a new connection."""
    if not m.tries:
        return Judgement(R, "no holder was tried: nothing measured")
    text = "; ".join(_holder_text(t) for t in m.tries) + f" (window {m.window_s:.1f} s)"
    blocked = [t for t in m.tries if _blocked(t)]
    if not blocked:
        return Judgement(R, f"{text}: no holder stopped a new connection")
    per_destination = any(t.other_destination == "ok" for t in blocked)
    some_only = len(blocked) < len(m.tries)
    if not per_destination and not some_only:
        return Judgement(C, f"{text}: every holder kept new connections out")
    kept = ", ".join(_holder_name(t) for t in blocked)
    why = []
    if per_destination:
        why.append("only towards the destination they hold: the limit is per four-tuple, "
                   "not the host's")
    if _default_reuse_loopback_only(m):
        why.append("under the default tcp_tw_reuse=2 client TIME_WAITs blocked off loopback "
                   "only: towards 127.0.0.1 they were taken over (2 = loopback only, "
                   "tcp_twsk_unique), towards an address outside 127/8 they held as with 0")
    if any(t.holders == "server TIME_WAIT" and not _blocked(t) for t in m.tries):
        why.append("TIME_WAITs on the accept side never stopped a new connection")
    return Judgement(P, f"{text}. Only {kept} kept new connections out"
                        + "".join(f"; {w}" for w in why))


# -- C31: ip_local_port_range's default, and widening it -----------------------------------

#: The article's figures (seed 002): the default, and the widened range it recommends.
ARTICLE_DEFAULT = (32768, 61000)
ARTICLE_WIDE = (1024, 65000)
#: Linux's default since 4.2 (commit 07f4c90062f8; see the module docstring).
DEFAULT_SINCE_4_2 = (32768, 60999)
#: How far connections per usable port may fall from 1 (one connection per port, per
#: destination) and still count as proportional.
PROPORTION_TOLERANCE = 0.02


@dataclass(frozen=True)
class RangeCount:
    """Connections to one destination until connect() refused, in one namespace's range."""

    range: tuple[int, int]
    usable: int
    connections: int
    errno: str | None


@dataclass(frozen=True)
class PortRangeWidening:
    """The default range in a fresh namespace, and the article's two ranges scaled down by
    ``scale`` (sizes kept in proportion), each counted in a namespace of its own."""

    default_range: tuple[int, int] | None
    narrow: RangeCount | None
    wide: RangeCount | None
    scale: float = 1.0


def _per_port(c: RangeCount | None) -> float | None:
    return None if c is None or c.usable <= 0 else c.connections / c.usable


@judge("C31", C, P, R)
def c31(m: PortRangeWidening) -> Judgement:
    """Refuted unless the wider stand-in range gave more connections to one destination, one
    per usable port (within PROPORTION_TOLERANCE); then the default decides: 32768-61000
    confirmed, anything else partly (a quoted figure is wrong: the mechanism holds, so not
    outdated; where Linux 4.2 changed it, the summary names the change)."""
    n, w = _per_port(m.narrow), _per_port(m.wide)
    size = {k: v[1] - v[0] + 1 for k, v in (("a", ARTICLE_DEFAULT), ("w", ARTICLE_WIDE))}
    counts = "no counts" if m.narrow is None or m.wide is None else (
        f"scaled 1:{1 / m.scale:.0f}, {m.narrow.range[0]}-{m.narrow.range[1]} gave "
        f"{m.narrow.connections} connections to one destination for {m.narrow.usable} usable "
        f"ports, {m.wide.range[0]}-{m.wide.range[1]} gave {m.wide.connections} for "
        f"{m.wide.usable} ({m.narrow.errno}, {m.wide.errno}); the article's ranges hold "
        f"{size['a']} and {size['w']} ports")
    d = m.default_range
    default = "no default read" if d is None else f"default in a fresh namespace {d[0]}-{d[1]}"
    head = f"{default}; {counts} (tolerance {PROPORTION_TOLERANCE:.0%} per port)"
    proportional = (n is not None and w is not None and m.narrow is not None
                    and m.wide is not None and m.wide.connections > m.narrow.connections
                    and abs(n - 1) <= PROPORTION_TOLERANCE and abs(w - 1) <= PROPORTION_TOLERANCE)
    if not proportional:
        return Judgement(R, f"{head}: widening did not give proportionally more connections")
    if d == ARTICLE_DEFAULT:
        return Judgement(C, f"{head}: the default is the article's, and widening gives one "
                            f"more connection per destination for every port added")
    if d == DEFAULT_SINCE_4_2:
        return Judgement(P, f"{head}: 32768-61000 was the default until Linux 4.2, whose "
                              f"commit 07f4c90062f8 made it 32768-60999 (an even-sized range); "
                              f"widening still gives one connection per port, per destination")
    return Judgement(P, f"{head}: widening gives one connection per port, per destination, "
                        f"but the default is not the article's 32768-61000 (compared exactly)")


# -- C15: what thousands of TIME_WAITs cost ------------------------------------------------

#: What "noticeable" means here: a new connection costing at least 1.5 times the CPU time
#: (and wall time) it costs next to no TIME_WAIT at all.
NOTICEABLE = 1.5
#: "Thousands" (seed 000's example: 3000): levels from 1000 up to 9999 TIME_WAITs.
THOUSANDS = (1000, 9999)


@dataclass(frozen=True)
class CostLevel:
    """One level: TIME_WAITs present, and the median round's per-connection cost."""

    #: TIME_WAITs counted before the level's rounds (0 for a baseline)
    present: int
    wall_us: float
    cpu_us: float
    #: TIME_WAITs counted after its rounds (None: not counted)
    present_after: int | None = None
    #: median wall time of connect() alone (None: not timed)
    connect_us: float | None = None


@dataclass(frozen=True)
class CostSeries:
    """Levels measured with the TIME_WAITs in one place, each against its own baseline."""

    #: where the TIME_WAITs sat ("server side of 8 filler listeners", "client side, ...")
    where: str
    #: the 0-TIME_WAIT baseline first, then the levels
    levels: tuple[CostLevel, ...]


@dataclass(frozen=True)
class TimeWaitCost:
    """Per-connection cost next to 0 and more TIME_WAITs, series by series."""

    series: tuple[CostSeries, ...]
    rounds: int = 0
    per_round: int = 0
    #: bytes per TIME_WAIT socket (tw_sock_TCP slab), None if unreadable
    tw_bytes: int | None = None


def _baseline(s: CostSeries) -> CostLevel | None:
    """The series' baseline if it was measured with no TIME_WAIT at all, before or after."""
    if not s.levels:
        return None
    base = s.levels[0]
    empty = base.present == 0 and not base.present_after
    return base if empty and base.cpu_us > 0 and base.wall_us > 0 else None


def _ratios(s: CostSeries) -> list[tuple[int, float, float]]:
    base = _baseline(s)
    if base is None:
        return []
    return [(lv.present, lv.cpu_us / base.cpu_us, lv.wall_us / base.wall_us)
            for lv in s.levels[1:]]


def _series_text(s: CostSeries) -> str:
    base = _baseline(s)
    if base is None:
        held = "nothing measured" if not s.levels else (
            f"the baseline held {s.levels[0].present}/{s.levels[0].present_after} TIME_WAIT "
            f"(before/after)")
        return f"TIME_WAITs on the {s.where}: no baseline ({held})"
    parts = []
    for lv, (n, c, w) in zip(s.levels[1:], _ratios(s), strict=True):
        alone = "" if lv.connect_us is None or base.connect_us is None else (
            f", connect() alone {base.connect_us:.0f} -> {lv.connect_us:.0f} us")
        parts.append(f"x{c:.2f} CPU / x{w:.2f} wall next to {n}{alone}")
    return (f"TIME_WAITs on the {s.where}: {base.cpu_us:.0f} us CPU / {base.wall_us:.0f} us "
            f"wall per connection next to 0, {', '.join(parts) or 'no level'}")


def _noticed(s: CostSeries) -> list[int]:
    return [n for n, c, w in _ratios(s) if min(c, w) >= NOTICEABLE]


@judge("C15", C, P, R)
def c15(m: TimeWaitCost) -> Judgement:
    """Each level's cost over its series' 0-TIME_WAIT baseline, by CPU and by wall time
    (both must reach NOTICEABLE: a neighbour on our core inflates one clock, not the cost).
    The article places its TIME_WAITs nowhere, so each place measured counts: confirmed if
    thousands are noticeable wherever they sat; partly if only in some places (the client's
    connect() searching a port range the TIME_WAITs crowd, net/ipv4/inet_hashtables.c
    __inet_hash_connect -> __inet_check_established; the condition the article leaves out),
    or only far beyond thousands; refuted if no level is, or no baseline was empty."""
    measured = [s for s in m.series if _baseline(s) is not None]
    memory = "" if m.tw_bytes is None else f"; {m.tw_bytes} bytes of kernel memory each"
    head = ("; ".join(_series_text(s) for s in m.series) or "no series measured") + (
        f" (medians of {m.rounds} rounds of {m.per_round} connections; noticeable: x"
        f"{NOTICEABLE} by both clocks){memory}")
    if not measured:
        return Judgement(R, f"{head}: no per-connection cost measured next to zero TIME_WAIT, "
                            f"no baseline to compare with")
    at_thousands = [s for s in measured
                    if any(THOUSANDS[0] <= n <= THOUSANDS[1] for n in _noticed(s))]
    if at_thousands and len(at_thousands) == len(m.series):
        return Judgement(C, f"{head}: noticeable at thousands wherever they sat")
    if at_thousands:
        quiet = [s.where for s in m.series if s not in at_thousands]
        return Judgement(P, f"{head}: noticeable at thousands only with the TIME_WAITs on the "
                            f"{'; '.join(s.where for s in at_thousands)}, not on the "
                            f"{'; '.join(quiet)}")
    if any(n > THOUSANDS[1] for s in measured for n in _noticed(s)):
        return Judgement(P, f"{head}: noticeable only far beyond thousands")
    return Judgement(R, f"{head}: not noticeable")

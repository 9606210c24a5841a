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
  leave odd ones to bind()); before that it was 32768 61000 (net/ipv4/tcp.c since 2.4).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge, within
from tcplab.verdict import Verdict

C, P, R, OUT = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED, Verdict.OUTDATED


# -- C11: how long TIME_WAIT lasts ---------------------------------------------------------

#: Linux's TCP_TIMEWAIT_LEN (include/net/tcp.h).
TIMEWAIT_LEN_S = 60.0

#: The figures the articles attach to a system this kernel can stand for.
#: seed 001: "on RHEL" TIME_WAIT lasts 60 s (Linux: judged as a point).
#: seed 002: 2 x MSL, MSL being 2 min (RFC 1122) or 30 s (BSD): any implementation's
#: TIME_WAIT lies between 1 and 4 minutes (judged as a range).
#: Not judged here, because they describe Windows: seed 002's "Windows: 4 minutes", and
#: seed 000's "default 240 s", which the article at once shortens to 60 through Windows'
#: TcpTimedWaitDelay registry key (240 s is that key's default; C37 covers Windows keys).
RHEL_S = 60.0
MSL_RANGE_S = (2 * 30.0, 2 * 120.0)

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


@judge("C11", C, P, R)
def c11(m: TimeWaitLength) -> Judgement:
    """Confirmed if the length is RHEL's 60 s (seed 001), which is also 2 x BSD's 30 s MSL
    inside seed 002's 1-4 minutes; partly if it is another 2 x MSL inside 1-4 minutes (the
    mechanism holds, the Linux figure is wrong); refuted outside that range or unmeasured."""
    low, high = MSL_RANGE_S
    t = m.measured_s
    armed = "" if m.armed_s is None else f", timer armed at {m.armed_s:.1f} s"
    tol = f"tolerance +-{TOLERANCE_S:.0f} s"
    if t is None:
        return Judgement(R, f"no TIME_WAIT length was measured ({m.how}): no timewait "
                               f"timer, or the socket left TIME_WAIT for another state")
    head = f"TIME_WAIT lasted {t:.1f} s ({m.how}{armed}; {tol})"
    in_range = low - TOLERANCE_S <= t <= high + TOLERANCE_S
    if within(t, RHEL_S, TOLERANCE_S):
        return Judgement(C, f"{head}: seed 001's 60 s on RHEL matches; it is 2 x the 30 s BSD "
                            f"MSL, inside seed 002's 1-4 minutes. On Linux it is the constant "
                            f"TCP_TIMEWAIT_LEN, not derived from any MSL setting; seed 000's "
                            f"240 s is Windows' default, not judged here")
    if in_range:
        return Judgement(P, f"{head}: inside seed 002's 1-4 minutes (2 x an MSL of "
                            f"{t / 2:.0f} s), but not seed 001's 60 s for Linux "
                            f"(mainline's TCP_TIMEWAIT_LEN)")
    return Judgement(R, f"{head}: outside 2 x MSL for any MSL from 30 s to 2 min "
                        f"({low:.0f}-{high:.0f} s) and not seed 001's 60 s")


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

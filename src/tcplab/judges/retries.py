"""Judges of the retry tunables of the kernel's documentation (ip-sysctl.rst): K01-K04.

Each is measured against a peer that really vanished (``tcplab.kernel.partition``): the
segments leave the interface, are captured there, and reach no one. Times are the capture's
kernel timestamps, relative to the first transmission of what is retransmitted.

Kernel facts the rules rest on (net/ipv4/tcp_timer.c, Linux 6.18):

* SYN_SENT: ``tcp_write_timeout`` gives up when ``icsk_retransmits`` reaches
  ``max_retransmits = tcp_syn_retries + tcp_syn_linear_timeouts`` (or earlier, when the time
  since the first retransmission passes ``tcp_model_timeout(tcp_syn_retries, 1 s)``); and
  ``tcp_retransmit_timer`` doubles the RTO only once ``total_rto`` exceeds
  tcp_syn_linear_timeouts, so the first linear_timeouts + 1 intervals stay at 1 s. Both came
  with Linux 6.5 ("tcp: make the first N SYN RTO backoffs linear"); before it the count was
  tcp_syn_retries alone, the figure 63 s. So tcp_syn_retries=3 with the default 4 linear
  timeouts sends 8 SYNs (0, 1, 2, 3, 4, 5, 7, 11 s) and fails at the timer after the last
  (8 s later, 19 s; a long timer may fire a few hundred ms late on the timer wheel).
* SYN_RECV (a request socket): ``reqsk_timer_handler`` (inet_connection_sock.c) resends the
  SYN-ACK with a doubling timeout from 1 s and drops the request once ``num_timeout``
  reaches tcp_synack_retries.
* Established data and orphans: ``retransmits_timed_out`` compares the time since
  ``retrans_stamp`` (stamped at the first RTO retransmission) with ``tcp_model_timeout(N,
  TCP_RTO_MIN)``: 200 ms doubling up to TCP_RTO_MAX (120 s), summed over N + 1 RTOs; the
  check runs only when the RTO timer fires, so the connection dies at the first expiry past
  that time. N is tcp_retries2, or tcp_orphan_retries for an orphan (``tcp_orphan_retries``
  turns 0 into 8 while the RTO is below TCP_RTO_MAX), or TCP_USER_TIMEOUT replaces the
  modelled time. A tail loss probe may go first: a retransmission before the RTO ones,
  which does not start the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from tcplab.judges import Judgement, judge
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED

#: Timers fire on the kernel's timer wheel: a measured interval matches a modelled one within
#: this much, or this share of it (the wheel rounds a long timer up by at most 1/8).
INTERVAL_TOLERANCE_S, INTERVAL_TOLERANCE = 0.15, 0.15
#: A figure of the documentation matches a projection from measured intervals within this.
FIGURE_TOLERANCE = 0.05
#: A give-up time matches the one modelled from measured intervals within this much, or this
#: share of it (the last timer is not captured: nothing is sent when it fires).
KILL_TOLERANCE_S, KILL_TOLERANCE = 0.5, 0.05
RTO_MIN_S, RTO_MAX_S = 0.2, 120.0


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def _near(value: float, model: float, share: float, floor: float) -> bool:
    return abs(value - model) <= max(floor, share * model)


def intervals(times: tuple[float, ...]) -> tuple[float, ...]:
    """Gaps between consecutive send times."""
    return tuple(b - a for a, b in pairwise(times))


# -- K01 ---------------------------------------------------------------------------------

def syn_interval(index: int, linear: int, rto: float) -> float:
    """The modelled wait before SYN retransmission ``index + 1``: ``rto`` for the first
    ``linear + 1``, then doubling."""
    return rto if index <= linear else rto * 2 ** (index - linear)


@dataclass(frozen=True)
class SynRetries:
    """connect() to a vanished peer with tcp_syn_retries / tcp_syn_linear_timeouts set."""

    syn_retries: int
    linear_timeouts: int
    #: every SYN sent, seconds after the first
    syn_s: tuple[float, ...]
    #: when connect() failed, seconds after the first SYN (None: it did not), and its errno
    failed_s: float | None
    errno: str | None
    #: this kernel's defaults (a fresh namespace)
    default_syn_retries: int | None = None
    default_linear_timeouts: int | None = None
    #: the documentation's figure: seconds to the last retransmission at the defaults
    doc_last_s: float = 67.0


@judge("K01", C, P, R)
def k01(m: SynRetries) -> Judgement:
    """Mechanism: connect() fails (ETIMEDOUT) after a bounded series of SYNs, linear then
    doubling. The documentation's count is tcp_syn_retries retransmissions: another count is
    a wrong figure (partly). Its 67 s is checked on a projection of the measured intervals to
    the defaults, with the measured count rule (retransmissions beyond tcp_syn_retries)."""
    sent = len(m.syn_s)
    retransmissions = max(sent - 1, 0)
    gaps = intervals(m.syn_s)
    rto = gaps[0] if gaps else 0.0
    shaped = bool(gaps) and all(
        _near(gap, syn_interval(i, m.linear_timeouts, rto), INTERVAL_TOLERANCE,
              INTERVAL_TOLERANCE_S) for i, gap in enumerate(gaps))
    failed = m.failed_s is not None and m.errno == "ETIMEDOUT"
    extra = retransmissions - m.syn_retries
    projected: float | None = None
    count = None if m.default_syn_retries is None else m.default_syn_retries + extra
    if count is not None and m.default_linear_timeouts is not None and gaps:
        projected = sum(syn_interval(i, m.default_linear_timeouts, rto) for i in range(count))
    figure = projected is not None and _near(projected, m.doc_last_s, FIGURE_TOLERANCE, 0.0)
    what = (f"tcp_syn_retries={m.syn_retries}, tcp_syn_linear_timeouts={m.linear_timeouts}: "
            f"{sent} SYNs at {', '.join(f'{t:.2f}' for t in m.syn_s) or 'none'} s "
            f"({retransmissions} retransmissions), intervals "
            f"{'linear then doubling' if shaped else 'not linear-then-doubling'} (each within "
            f"{INTERVAL_TOLERANCE:.0%} or {INTERVAL_TOLERANCE_S} s of the model); connect() "
            f"failed after {_s(m.failed_s)} ({m.errno or 'no error'})")
    at_default = ("" if projected is None else
                  f"; projected to the defaults ({m.default_syn_retries} and "
                  f"{m.default_linear_timeouts}, {count} retransmissions, "
                  f"measured first interval {rto:.2f} s): last SYN at {projected:.1f} s against "
                  f"the documented {m.doc_last_s:.0f} s (tolerance {FIGURE_TOLERANCE:.0%})")
    if not (failed and shaped and retransmissions > 0):
        return Judgement(R, what + at_default)
    if extra == 0 and figure:
        return Judgement(C, what + at_default)
    wrong = ("" if extra == 0 else
             f"; not tcp_syn_retries retransmissions but {retransmissions} = tcp_syn_retries "
             f"+ {extra}" + (" (tcp_syn_linear_timeouts: the count and the linear timeouts "
                             "came with Linux 6.5; before it the count was tcp_syn_retries "
                             "and the figure 63 s)" if extra == m.linear_timeouts else ""))
    return Judgement(P, what + at_default + wrong)


# -- K02 ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SynAckRetries:
    """A listener whose SYN-ACKs go nowhere (the client sent one SYN and vanished)."""

    synack_retries: int
    #: every SYN-ACK sent, seconds after the first
    synack_s: tuple[float, ...]
    #: when the request (SYN_RECV) was gone, seconds after the first SYN-ACK; None: never
    dropped_s: float | None
    default_synack_retries: int | None = None
    #: the documentation's figures at the default: last retransmission, final timeout
    doc_last_s: float = 31.0
    doc_timeout_s: float = 63.0


@judge("K02", C, P, R)
def k02(m: SynAckRetries) -> Judgement:
    """Mechanism: the SYN-ACK is resent on a doubling timer, then the request is dropped. The
    count tcp_synack_retries, the drop one more (doubled) timeout after the last SYN-ACK, and
    the 31 s / 63 s figures (projected from the measured first interval) are figures."""
    retransmissions = max(len(m.synack_s) - 1, 0)
    gaps = intervals(m.synack_s)
    rto = gaps[0] if gaps else 0.0
    shaped = bool(gaps) and all(_near(gap, rto * 2 ** i, INTERVAL_TOLERANCE,
                                      INTERVAL_TOLERANCE_S) for i, gap in enumerate(gaps))
    model_drop = rto * (2 ** (retransmissions + 1) - 1)
    drop_on_time = m.dropped_s is not None and _near(m.dropped_s, model_drop, KILL_TOLERANCE,
                                                     KILL_TOLERANCE_S)
    default = m.default_synack_retries
    last = None if default is None or not gaps else rto * (2 ** default - 1)
    timeout = None if default is None or not gaps else rto * (2 ** (default + 1) - 1)
    figures = (last is not None and timeout is not None
               and _near(last, m.doc_last_s, FIGURE_TOLERANCE, 0.0)
               and _near(timeout, m.doc_timeout_s, FIGURE_TOLERANCE, 0.0))
    what = (f"tcp_synack_retries={m.synack_retries}: {len(m.synack_s)} SYN-ACKs at "
            f"{', '.join(f'{t:.2f}' for t in m.synack_s) or 'none'} s ({retransmissions} "
            f"retransmissions, intervals {'doubling' if shaped else 'not doubling'} from "
            f"{rto:.2f} s); the request was dropped after {_s(m.dropped_s)} (modelled "
            f"{model_drop:.2f} s, tolerance {KILL_TOLERANCE:.0%} or {KILL_TOLERANCE_S} s)")
    if last is not None and timeout is not None:
        what += (f"; projected to the default {default}: last SYN-ACK at {last:.1f} s, dropped "
                 f"at {timeout:.1f} s, against the documented {m.doc_last_s:.0f} s and "
                 f"{m.doc_timeout_s:.0f} s (tolerance {FIGURE_TOLERANCE:.0%})")
    if m.dropped_s is None or retransmissions == 0:
        return Judgement(R, what)
    exact = retransmissions == m.synack_retries and shaped and drop_on_time and figures
    return Judgement(C if exact else P, what)


# -- K03, K04: the RTO model -------------------------------------------------------------

def model_timeout(boundary: int, rto_min: float = RTO_MIN_S, rto_max: float = RTO_MAX_S) -> float:
    """``tcp_model_timeout``: the time ``boundary`` retransmissions take from an initial RTO
    of ``rto_min`` doubling up to ``rto_max``, until the (boundary + 1)th RTO ends."""
    total, rto = 0.0, rto_min
    for _ in range(boundary + 1):
        total += rto
        rto = min(rto * 2, rto_max)
    return round(total, 6)


@dataclass(frozen=True)
class Abandoned:
    """One connection whose unacknowledged segment goes to a vanished peer."""

    #: its retransmissions, seconds after the segment was first sent
    retransmit_s: tuple[float, ...] = ()
    #: when the kernel gave up on it (the error reached the application, or an orphan left
    #: the tables), seconds after the first send; None: not within the wait
    killed_s: float | None = None
    errno: str | None = None


def clock_start(retransmit_s: tuple[float, ...]) -> tuple[float, float] | None:
    """Where the kernel's give-up clock starts (``retrans_stamp``: the first RTO
    retransmission) and the RTO then: the first retransmission after which the intervals
    double. A tail loss probe before it comes one RTO earlier, at no longer an interval."""
    if not retransmit_s:
        return None
    gaps = (retransmit_s[0], *intervals(retransmit_s))
    for i in range(len(retransmit_s) - 1):
        if gaps[i + 1] >= 1.5 * gaps[i]:
            return retransmit_s[i], gaps[i]
    return retransmit_s[0], gaps[0]


def give_up_at(limit: float, retransmit_s: tuple[float, ...],
               rto_max: float = RTO_MAX_S) -> float | None:
    """When the kernel gives up, modelled from the measured start and RTO: the first RTO
    expiry at least ``limit`` after the start (the RTO doubling up to ``rto_max``)."""
    start = clock_start(retransmit_s)
    if start is None:
        return None
    at, rto = start
    elapsed = 0.0
    while elapsed < limit and elapsed < 100 * rto_max:
        rto = min(rto * 2, rto_max)
        elapsed += rto
    return at + elapsed


def explained_by(killed_s: float | None, retransmit_s: tuple[float, ...],
                 rto_max: float = RTO_MAX_S) -> int | None:
    """The retry count N whose modelled give-up time lies nearest the measured one."""
    if killed_s is None or clock_start(retransmit_s) is None:
        return None
    best = min(range(31), key=lambda n: abs((give_up_at(model_timeout(n, rto_max=rto_max),
                                                       retransmit_s, rto_max) or 0.0) - killed_s))
    return best


def _on_model(a: Abandoned, limit: float, rto_max: float = RTO_MAX_S) -> tuple[bool, float | None]:
    model = give_up_at(limit, a.retransmit_s, rto_max)
    ok = (a.killed_s is not None and model is not None
          and _near(a.killed_s, model, KILL_TOLERANCE, KILL_TOLERANCE_S))
    return ok, model


def _abandoned(a: Abandoned, model: float | None) -> str:
    return (f"{len(a.retransmit_s)} retransmissions "
            f"({', '.join(f'{t:.2f}' for t in a.retransmit_s) or 'none'} s), given up after "
            f"{_s(a.killed_s)}{f' ({a.errno})' if a.errno else ''}, modelled "
            f"{_s(model)}")


@dataclass(frozen=True)
class Retries2UserTimeout:
    """Data to a vanished peer: one connection under tcp_retries2, others with
    TCP_USER_TIMEOUT set (milliseconds)."""

    retries2: int
    by_retries2: Abandoned
    user_timeouts_ms: tuple[int, ...] = ()
    by_user_timeout: tuple[Abandoned, ...] = ()
    default_retries2: int | None = None
    rto_max_ms: int | None = None
    #: the documentation's hypothetical timeout at the default
    doc_default_s: float = 924.6


@judge("K03", C, P, R)
def k03(m: Retries2UserTimeout) -> Judgement:
    """Mechanism: the connection is killed (ETIMEDOUT) once retransmissions went
    unacknowledged for the modelled time of tcp_retries2, at the first RTO past it. Each
    TCP_USER_TIMEOUT must replace that time (killed at the option's time after the clock's
    start); the 924.6 s is the modelled time at the default (a lower bound of the effective
    one, which is projected from the measured RTOs and must lie within the tolerance)."""
    rto_max = (m.rto_max_ms or RTO_MAX_S * 1000) / 1000
    limit = model_timeout(m.retries2, rto_max=rto_max)
    ruled, model = _on_model(m.by_retries2, limit, rto_max)
    killed = m.by_retries2.killed_s is not None and m.by_retries2.errno == "ETIMEDOUT"
    n = explained_by(m.by_retries2.killed_s, m.by_retries2.retransmit_s, rto_max)
    parts = [f"tcp_retries2={m.retries2} (modelled {limit:.1f} s from the first RTO "
             f"retransmission): {_abandoned(m.by_retries2, model)}"
             + ("" if n is None else f", as N={n} would be")]
    users = []
    for ms, a in zip(m.user_timeouts_ms, m.by_user_timeout, strict=False):
        start = clock_start(a.retransmit_s)  # the RTO is clamped to end at the option's time
        um = None if start is None else start[0] + ms / 1000
        users.append(a.errno == "ETIMEDOUT" and a.killed_s is not None and um is not None
                     and _near(a.killed_s, um, KILL_TOLERANCE, KILL_TOLERANCE_S))
        parts.append(f"TCP_USER_TIMEOUT={ms} ms: {_abandoned(a, um)}")
    default = m.default_retries2
    projected = None
    if default is not None:
        projected = give_up_at(model_timeout(default, rto_max=rto_max),
                               m.by_retries2.retransmit_s, rto_max)
        parts.append(f"at the default {default} the modelled time is "
                     f"{model_timeout(default, rto_max=rto_max):.1f} s and the give-up, "
                     f"projected from the measured RTOs, {_s(projected)}, against the "
                     f"documented {m.doc_default_s} s (tolerance {FIGURE_TOLERANCE:.0%})")
    figure = projected is not None and _near(projected, m.doc_default_s, FIGURE_TOLERANCE, 0.0)
    users_ok = bool(users) and all(users)
    parts.append(f"give-up times within {KILL_TOLERANCE:.0%} or {KILL_TOLERANCE_S} s of the "
                 "model")
    summary = "; ".join(parts)
    if not killed:
        return Judgement(R, summary)
    return Judgement(C if ruled and users_ok and figure else P, summary)


@dataclass(frozen=True)
class OrphanRetries:
    """Two orphans (closed by their applications) in FIN_WAIT1 against a vanished peer: one
    where tcp_orphan_retries is set to ``orphan_retries``, one where it is 0."""

    orphan_retries: int
    explicit: Abandoned
    zero: Abandoned
    #: the sysctl as read where the second orphan lived, and in a fresh namespace
    zero_sysctl: int | None = None
    default_orphan_retries: int | None = None


@judge("K04", C, P, R)
def k04(m: OrphanRetries) -> Judgement:
    """Mechanism: an orphan is dropped after bounded retransmissions. 0 means 8: the orphan
    under 0 is dropped when the model of N=8 says (and with the one set to 8, if that is what
    was set); otherwise partly (a wrong figure). Either orphan never dropped: refuted."""
    limit = model_timeout(m.orphan_retries)
    ruled, model = _on_model(m.explicit, limit)
    as_eight, zero_model = _on_model(m.zero, model_timeout(8))
    n_zero = explained_by(m.zero.killed_s, m.zero.retransmit_s)
    n_set = explained_by(m.explicit.killed_s, m.explicit.retransmit_s)
    same = m.orphan_retries != 8 or (
        m.zero.killed_s is not None and m.explicit.killed_s is not None
        and _near(m.zero.killed_s, m.explicit.killed_s, KILL_TOLERANCE, KILL_TOLERANCE_S))
    summary = (f"tcp_orphan_retries={m.orphan_retries} (modelled {limit:.1f} s): "
               f"{_abandoned(m.explicit, model)}"
               + ("" if n_set is None else f", as N={n_set} would be")
               + f"; tcp_orphan_retries={m.zero_sysctl if m.zero_sysctl is not None else '?'}: "
               f"{_abandoned(m.zero, zero_model)} (the model of N=8)"
               + ("" if n_zero is None else f", as N={n_zero} would be")
               + f"; a fresh namespace reads {m.default_orphan_retries}; give-up times within "
               f"{KILL_TOLERANCE:.0%} or {KILL_TOLERANCE_S} s of the model")
    if m.explicit.killed_s is None or m.zero.killed_s is None:
        return Judgement(R, summary)
    return Judgement(C if ruled and as_eight and same and n_zero == 8 else P, summary)

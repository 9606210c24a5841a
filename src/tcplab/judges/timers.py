"""Judges of the TCP timers that end (or fail to end) a connection: CLOSE_WAIT and keepalive
(C22, C23, C34, C35), FIN_WAIT2 and tcp_fin_timeout (C25, C26, C27), SO_LINGER 0 (C36).

Kernel facts the rules rest on (Linux, net/ipv4):

* CLOSE_WAIT has no timer of its own. The only timer that can run on it is keepalive:
  ``tcp_keepalive_timer`` (tcp_timer.c) returns early unless the socket has SOCK_KEEPOPEN
  (SO_KEEPALIVE); then, once ``keepalive_time_when`` (TCP_KEEPIDLE, else the sysctl
  tcp_keepalive_time) has passed without data, it sends a probe every
  ``keepalive_intvl_when`` and calls ``tcp_write_err`` (ETIMEDOUT) when
  ``keepalive_probes`` went unanswered. A peer that ACKs the probe resets ``probes_out``;
  one whose socket is gone answers RST.
* FIN_WAIT2 is bounded only for an orphan (``SOCK_DEAD``: the application called close()).
  ``__tcp_close`` (tcp.c) and ``tcp_rcv_state_process`` (tcp_input.c) take ``tcp_fin_time``
  (TCP_LINGER2 if set, else tcp_fin_timeout) and, when it is at most TCP_TIMEWAIT_LEN (60 s),
  hand the socket to ``tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`` (tcp_minisocks.c): ss shows it
  as FIN-WAIT-2 with a "timewait" timer. A socket that was only shut down (fd still open) is
  not SOCK_DEAD and gets no timer.
* TIME_WAIT's length is TCP_TIMEWAIT_LEN: ``tcp_time_wait(sk, TCP_TIME_WAIT, 0)`` and the
  FIN_WAIT2 -> TIME_WAIT step in ``tcp_timewait_state_process`` both schedule 60 s, whatever
  tcp_fin_timeout is.

* A segment for a socket that is gone (an orphaned FIN_WAIT2 past its timeout) draws a RST;
  a CLOSE_WAIT socket that takes it is failed with EPIPE (``tcp_reset``, tcp_input.c).

The condition "keepalive acts only on sockets that set SO_KEEPALIVE" is measured the same
way wherever it applies (C23, C34, C35): a socket without SO_KEEPALIVE, facing the same
silent peer, is looked at next to one with it; if it is untouched, the claim holds only under
that condition (partly), unless the claim's own articles state it (C34: a note). C22 is not
touched by it: with or without SO_KEEPALIVE at the defaults, nothing ends CLOSE_WAIT before
two hours. "The peer must be silent or gone" is a condition of C23 only if a CLOSE_WAIT
facing an ordinary peer, one that closed its socket, survives as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge, within
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED

TWO_HOURS_S = 7200
#: a keepalive timer read just after SO_KEEPALIVE was set lies within this of its full value
KEEPALIVE_READ_TOLERANCE_S = 60.0
#: keepalive fires on jiffies-rounded timers and is seen by polling: a drop is on time if it
#: comes at most this much before / after idle + interval x probes
EARLY_S, LATE_S = 0.3, 1.0
#: FIN_WAIT2 and TIME_WAIT timers: a lifetime or timer matches a figure within this
SLACK_S = 1.0
#: "about 11 minutes" of probing: within half a minute
PROBING_TOLERANCE_MIN = 0.5


def _secs(value: float | None, missing: str = "never (still there)") -> str:
    return missing if value is None else f"{value:.2f} s"


def _on_time(value: float | None, expected: float) -> bool:
    return value is not None and expected - EARLY_S <= value <= expected + LATE_S


def _untouched(state: str | None, timer: str | None, alive_state: str) -> bool:
    """A socket without SO_KEEPALIVE that kept its state and had no timer at all."""
    return state == alive_state and timer == "off"


def _without_keepalive(state: str | None, timer: str | None) -> str:
    return f"a socket without SO_KEEPALIVE facing the same silent peer was {state or 'gone'} " \
           f"(timer {timer or 'not seen'})"


# -- C22 ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CloseWaitBound:
    """Leaked CLOSE_WAIT sockets (the application read end-of-file and never closes): what
    in the kernel could end them, and whether a peer can pile them up."""

    #: without SO_KEEPALIVE: the timer sock_diag showed (kind, s left), and the state after
    #: ``observed_s`` seconds of watching (None: gone)
    bare_timer: str | None
    bare_timer_s: float | None
    bare_after: str | None
    observed_s: float
    #: with SO_KEEPALIVE and the namespace's own keepalive settings (a fresh namespace: the
    #: kernel's defaults): the timer kind and seconds left, and tcp_keepalive_time there
    keepalive_timer: str | None
    keepalive_timer_s: float | None
    keepalive_time_sysctl: int | None
    #: a peer opens ``pile`` connections and half-closes each: how many were still
    #: CLOSE_WAIT after ``observed_s`` against a server that never closes, and against one
    #: that closes on end-of-file
    pile: int
    piled_leaking: int
    piled_closing: int


@judge("C22", C, R)
def c22(m: CloseWaitBound) -> Judgement:
    """CLOSE_WAIT lasts at least two hours (nothing ends it sooner), so a peer can pile
    sockets up. Article 003 sets this in a server that has not closed yet (it still has work
    or data), so that they pile up only against such an application is a note, not a
    condition; that the server is exhausted is not measured."""
    own_timer = m.bare_timer not in (None, "off")
    own_bound = own_timer or m.bare_after != "CLOSE_WAIT"
    short_own = m.bare_after != "CLOSE_WAIT" or (own_timer and (
        m.bare_timer_s is None or m.bare_timer_s < TWO_HOURS_S - KEEPALIVE_READ_TOLERANCE_S))
    short_keepalive = (m.keepalive_timer_s is not None
                       and m.keepalive_timer_s < TWO_HOURS_S - KEEPALIVE_READ_TOLERANCE_S)
    piles = m.pile > 0 and m.piled_leaking == m.pile
    at_least_two_hours = not short_own and not short_keepalive
    verdict = C if at_least_two_hours and piles else R
    bare = (f"without SO_KEEPALIVE a leaked CLOSE_WAIT socket had timer {m.bare_timer or 'not seen'}"
            + (f" ({m.bare_timer_s:.1f} s left)" if m.bare_timer_s and m.bare_timer != "off" else "")
            + f" and was {m.bare_after or 'gone'} after {m.observed_s:.2f} s")
    bare += (": nothing in the kernel ends it, it lasts until the application closes it"
             if not own_bound else "")
    ka = (f"with SO_KEEPALIVE (tcp_keepalive_time {m.keepalive_time_sysctl}) the first probe was "
          f"{_secs(m.keepalive_timer_s, 'not scheduled')} away")
    ka += (", shorter than two hours" if short_keepalive
           else ", so keepalive ends it no sooner than two hours either")
    ka += f" (tolerance {KEEPALIVE_READ_TOLERANCE_S:.0f} s)"
    pile = (f"{m.piled_leaking} of {m.pile} half-closed connections stayed CLOSE_WAIT against a "
            f"server that never closes, {m.piled_closing} of {m.pile} against one that closes "
            "on end-of-file")
    if piles and m.piled_closing < m.pile:
        pile += " (a peer piles them up only where the application does not close them)"
    return Judgement(verdict, f"{bare}; {ka}; {pile}")


# -- C23 ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeepaliveClearsCloseWait:
    """Leaked CLOSE_WAIT sockets (the server read end-of-file and never closes), facing peers
    of three kinds: one that fell silent (its socket drops every segment), one that closed
    as an ordinary client does (close(): its orphaned FIN_WAIT2 ends, then nothing is left to
    answer), and one that only shut down and keeps its socket (it answers every probe)."""

    #: with SO_KEEPALIVE at a lower and a higher setting, silent peer: idle + interval x
    #: probes, and when the kernel dropped the CLOSE_WAIT socket, counted from the peer's FIN
    #: (None: it did not within the watch)
    low_total_s: float
    low_cleared_s: float | None
    high_total_s: float
    high_cleared_s: float | None
    #: the error the kernel left on the dropped socket for the application (SO_ERROR; its
    #: recv() returns end-of-file first, the FIN having come)
    low_errno: str | None
    #: without SO_KEEPALIVE, same silent peer: its timer and its state at the end of the watch
    bare_timer: str | None
    bare_after: str | None
    #: with SO_KEEPALIVE (first probe ``closing_idle_s`` after the FIN, all given up at
    #: ``closing_total_s``), peer closed with TCP_LINGER2 = ``closing_linger2_s``: when the
    #: CLOSE_WAIT socket was dropped, counted from the peer's close, and the error left on it
    closing_idle_s: float
    closing_total_s: float
    closing_linger2_s: float
    closing_cleared_s: float | None
    closing_errno: str | None
    #: with SO_KEEPALIVE and a peer that only shut down (fd open): its setting's total and
    #: its state at the end of the watch
    live_total_s: float
    live_after: str | None
    #: how long the watch lasted, from the peers' FINs
    observed_s: float


@judge("C23", C, P, R)
def c23(m: KeepaliveClearsCloseWait) -> Judgement:
    """Keepalive clears CLOSE_WAIT, lower settings sooner (timed against a silent peer).

    Partly if the clearing needs a condition articles 000 and 003 leave out: that the socket
    set SO_KEEPALIVE (a socket without it, facing the same silent peer, untouched), or that
    the peer is silent: that one counts only if a CLOSE_WAIT facing an ordinary closing peer
    (close(), its FIN_WAIT2 ended by TCP_LINGER2 / tcp_fin_timeout) also survives. On Linux
    it does not: once the orphan is gone, the next probe draws a RST (no socket), and
    ``tcp_reset`` (tcp_input.c) fails the CLOSE_WAIT socket with EPIPE. A peer that keeps its
    socket open and answers is alive; the CLOSE_WAIT it keeps is a note.

    Confirmed needs a socket without SO_KEEPALIVE cleared too, which Linux never does
    (``tcp_keepalive_timer`` returns unless SOCK_KEEPOPEN): that outcome is for other stacks."""
    cleared = _on_time(m.low_cleared_s, m.low_total_s) and _on_time(m.high_cleared_s,
                                                                     m.high_total_s)
    sooner = (cleared and m.low_cleared_s is not None and m.high_cleared_s is not None
              and m.low_cleared_s < m.high_cleared_s)
    needs_keepalive = _untouched(m.bare_after, m.bare_timer, "CLOSE_WAIT")
    needs_silence = (m.closing_cleared_s is None
                     and m.observed_s > m.closing_total_s + LATE_S)
    verdict = R if not sooner else P if needs_keepalive or needs_silence else C
    conditions = [c for c, on in (("the socket set SO_KEEPALIVE", needs_keepalive),
                                  ("the peer is silent (one that closed kept it)",
                                   needs_silence)) if on]
    live = "stayed CLOSE_WAIT" if m.live_after == "CLOSE_WAIT" else f"was {m.live_after or 'gone'}"
    return Judgement(verdict, (
        f"with SO_KEEPALIVE and a silent peer, CLOSE_WAIT was dropped {_secs(m.low_cleared_s)} "
        f"after the peer's FIN at idle+interval x probes = {m.low_total_s:g} s (pending "
        f"error {m.low_errno or 'none'}) and {_secs(m.high_cleared_s)} at {m.high_total_s:g} s "
        f"(on time: -{EARLY_S} / +{LATE_S} s); facing a peer that closed (TCP_LINGER2 "
        f"{m.closing_linger2_s:g} s, first probe at {m.closing_idle_s:g} s) it was dropped "
        f"{_secs(m.closing_cleared_s)} after the peer's close (pending error "
        f"{m.closing_errno or 'none'}); {_without_keepalive(m.bare_after, m.bare_timer)} "
        f"after {m.observed_s:.2f} s; facing a peer that only shut down and answers probes "
        f"({m.live_total_s:g} s setting) it {live} after {m.observed_s:.2f} s (a live peer)"
        + (f": cleared only when {' and '.join(conditions)}" if verdict is P and conditions else "")
    ))


# -- C34, C35 -------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeepaliveRule:
    """A socket with SO_KEEPALIVE against a silent peer (its socket drops every segment):
    when the kernel gave up and how, beside a socket without SO_KEEPALIVE facing a peer
    silent at least as long, and this kernel's defaults as a fresh network namespace has
    them. The setting is per socket (TCP_KEEPIDLE/INTVL/CNT) or the namespace's sysctls:
    the same timer (tcp_timer.c) reads either."""

    idle_s: int
    interval_s: int
    probes: int
    #: from the last data received to the kernel failing recv() (None: it did not)
    detected_s: float | None
    errno: str | None
    probes_seen: int
    default_time_s: int | None
    default_interval_s: int | None
    default_probes: int | None
    #: without SO_KEEPALIVE: its timer and state then
    bare_timer: str | None
    bare_after: str | None

    @property
    def expected_s(self) -> int:
        """idle + interval x probes: when the rule drops the silent peer."""
        return self.idle_s + self.interval_s * self.probes

    @property
    def holds(self) -> bool:
        """Dropped on time, with ETIMEDOUT, after exactly the probes set."""
        return (self.errno == "ETIMEDOUT" and _on_time(self.detected_s, self.expected_s)
                and self.probes_seen == self.probes)

    @property
    def needs_keepalive(self) -> bool:
        return _untouched(self.bare_after, self.bare_timer, "ESTABLISHED")

    def describe(self, setting: str) -> str:
        return (f"with {setting} {self.idle_s}/{self.interval_s}/{self.probes} (idle/interval/"
                f"probes) the silent peer was dropped {_secs(self.detected_s)} after the last "
                f"data (rule {self.expected_s} s, -{EARLY_S} / +{LATE_S} s), {self.probes_seen} "
                f"probes out, recv() {self.errno or 'no error'}; fresh-namespace defaults "
                f"{self.default_time_s}/{self.default_interval_s}/{self.default_probes}; "
                f"{_without_keepalive(self.bare_after, self.bare_timer)}")


@judge("C34", C, P, R)
def c34(m: KeepaliveRule) -> Judgement:
    """Idle, interval and probes decide when a silent peer is dropped, the defaults are
    7200/75/9 (about 11 minutes of probing); partly if a figure is wrong.

    Unlike C23 and C35, the articles behind C34 say these apply "when keepalive is enabled"
    (001, 002): that only sockets with SO_KEEPALIVE are probed is stated, so it is a note
    here, not a condition."""
    probing_min = (None if m.default_interval_s is None or m.default_probes is None
                   else m.default_interval_s * m.default_probes / 60)
    defaults = (m.default_time_s, m.default_interval_s, m.default_probes)
    figures_ok = defaults == (7200, 75, 9) and within(probing_min, 11.0, PROBING_TOLERANCE_MIN)
    verdict = R if not m.holds else (C if figures_ok else P)
    probing = "not read" if probing_min is None else f"{probing_min:.2f} min"
    return Judgement(verdict, (
        m.describe("per-socket values")
        + f"; the defaults give {probing} of probing (claimed 7200/75/9, about 11 min, "
        f"+/-{PROBING_TOLERANCE_MIN} min){'' if figures_ok else ': the figures differ'}"
        + (": only sockets with SO_KEEPALIVE are probed, as the articles say"
           if m.holds and m.needs_keepalive else "")
    ))


@dataclass(frozen=True)
class LoweredKeepalive:
    """Keepalive sysctls lowered in a namespace: the rule measured with a socket that only
    set SO_KEEPALIVE (no per-socket values), and one with its own TCP_KEEPIDLE."""

    rule: KeepaliveRule
    #: with SO_KEEPALIVE and its own TCP_KEEPIDLE: seconds left on its timer (the sysctls
    #: do not reach it)
    own_idle_s: int
    own_idle_timer_s: float | None


@judge("C35", C, P, R)
def c35(m: LoweredKeepalive) -> Judgement:
    """Lowered keepalive sysctls drop a silent peer after time + intvl x probes, sooner than
    the defaults; partly if only sockets with SO_KEEPALIVE are dropped (article 000 does
    not say so).

    Confirmed needs a socket without SO_KEEPALIVE dropped too, which Linux never does
    (``tcp_keepalive_timer`` returns unless SOCK_KEEPOPEN): that outcome is for other stacks."""
    r = m.rule
    default_total = (None if r.default_time_s is None or r.default_interval_s is None
                     or r.default_probes is None
                     else r.default_time_s + r.default_interval_s * r.default_probes)
    sooner = r.holds and default_total is not None and r.expected_s < default_total
    verdict = R if not sooner else (P if r.needs_keepalive else C)
    return Judgement(verdict, (
        r.describe("the sysctls at")
        + f"; the defaults give {default_total} s, the article's example 30/2/2 gives 34 s; one "
        f"with its own TCP_KEEPIDLE={m.own_idle_s} had {_secs(m.own_idle_timer_s, 'no timer')} "
        "left (sysctls not applied)"
        + (": only sockets with SO_KEEPALIVE are shortened" if verdict is P else "")
    ))


# -- C25, C26, C27 --------------------------------------------------------------------------

@dataclass(frozen=True)
class FinWait2Lifetimes:
    """Closers whose peers never send their FIN (the peers keep CLOSE_WAIT), with
    tcp_fin_timeout = ``fin_timeout_s`` in the namespace. Lifetimes count from the close."""

    fin_timeout_s: int
    #: closed by the application (an orphan): its timer in FIN_WAIT2, when it was gone
    #: (None: still there at the end of the watch)
    orphan_timer: str | None
    orphan_lifetime_s: float | None
    #: closed too, with TCP_LINGER2 = ``linger2_s`` (the per-socket form of the limit)
    linger2_s: int
    linger2_lifetime_s: float | None
    #: only shut down (shutdown(SHUT_WR), fd still open): its timer, and its state after
    #: ``half_observed_s``
    half_timer: str | None
    half_after: str | None
    half_observed_s: float


def _fw2_summary(m: FinWait2Lifetimes) -> str:
    return (f"tcp_fin_timeout {m.fin_timeout_s} s: a socket closed by the application had timer "
            f"{m.orphan_timer or 'not seen'} in FIN_WAIT2 and was gone after "
            f"{_secs(m.orphan_lifetime_s)}; with TCP_LINGER2={m.linger2_s} after "
            f"{_secs(m.linger2_lifetime_s)}; a socket only shut down (fd open) had timer "
            f"{m.half_timer or 'not seen'} and was {m.half_after or 'gone'} after "
            f"{m.half_observed_s:.2f} s")


@judge("C25", C, P, R)
def c25(m: FinWait2Lifetimes) -> Judgement:
    """FIN_WAIT2 without the peer's FIN never times out; partly if that holds only for some
    sockets (those the application shut down but did not close).

    Confirmed needs an orphan (closed by the application) whose FIN_WAIT2 has no timer,
    which Linux never produces: ``__tcp_close`` (tcp.c) and ``tcp_rcv_state_process``
    (tcp_input.c) give every orphan ``tcp_fin_time`` (a timewait socket, or the keepalive
    timer when it exceeds 60 s), and a negative TCP_LINGER2 resets instead of entering
    FIN_WAIT2. That outcome is for other stacks."""
    half_forever = (m.half_timer == "off" and m.half_after == "FIN_WAIT2"
                    and m.half_observed_s > m.fin_timeout_s + SLACK_S)
    orphan_forever = m.orphan_lifetime_s is None and m.orphan_timer == "off"
    verdict = C if half_forever and orphan_forever else P if half_forever or orphan_forever else R
    tail = {C: ": no FIN_WAIT2 measured had a timeout",
            P: ": only a socket the application shut down but still holds waits without limit",
            R: ": every FIN_WAIT2 measured timed out"}[verdict]
    return Judgement(verdict, _fw2_summary(m) + tail)


@judge("C26", C, R)
def c26(m: FinWait2Lifetimes) -> Judgement:
    """tcp_fin_timeout sets how long a socket the application closed stays in FIN_WAIT2."""
    follows = (m.orphan_timer not in (None, "off")
               and within(m.orphan_lifetime_s, m.fin_timeout_s, SLACK_S))
    return Judgement(C if follows else R, (
        _fw2_summary(m) + f" (tolerance {SLACK_S:g} s): the closed socket's FIN_WAIT2 "
        + ("followed tcp_fin_timeout (TCP_LINGER2 overrides it per socket; a socket not "
           "closed is not covered)" if follows else "did not follow tcp_fin_timeout")
    ))


@dataclass(frozen=True)
class TimeWaitAndFinTimeout:
    """TIME_WAIT's timer on entry with tcp_fin_timeout = ``fin_timeout_s``, next to a fresh
    namespace's (default fin timeout)."""

    fin_timeout_s: int
    #: one timer per kind of close measured (a plain active close; an orphan whose FIN_WAIT2
    #: got the peer's FIN before its fin timeout ran out)
    time_wait_timers_s: tuple[float, ...]
    default_fin_timeout_s: int | None
    default_time_wait_timer_s: float | None


@judge("C27", C, P, R)
def c27(m: TimeWaitAndFinTimeout) -> Judgement:
    """tcp_fin_timeout changes TIME_WAIT's length: confirmed if every TIME_WAIT measured
    changed, partly if only some did, refuted if none."""
    default = m.default_time_wait_timer_s
    changed = [default is not None and abs(t - default) > SLACK_S for t in m.time_wait_timers_s]
    verdict = C if changed and all(changed) else P if any(changed) else R
    shown = ", ".join(f"{t:.1f} s" for t in m.time_wait_timers_s) or "none measured"
    return Judgement(verdict, (
        f"TIME_WAIT timers with tcp_fin_timeout={m.fin_timeout_s}: {shown}; in a fresh namespace "
        f"(tcp_fin_timeout={m.default_fin_timeout_s}): {_secs(default, 'not measured')} "
        f"(tolerance {SLACK_S:g} s): {sum(changed)} of {len(changed)} changed"
    ))


# -- C36 ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LingerAbort:
    """Connections closed with SO_LINGER {on, 0}, and a graceful close for contrast."""

    #: every state either end of the aborted connections was seen in (None: gone)
    aborted_states: tuple[str | None, ...]
    #: where the gracefully closing client ended up
    graceful_state: str | None
    #: RSTs the namespace sent during the aborts (Tcp.OutRsts)
    resets_sent: int
    #: the peer of the aborted idle connection: dropped by the kernel (fd open), recv() errno
    peer_dropped: bool
    peer_errno: str | None
    #: bytes send() accepted on the aborted busy connection, and how many the peer received
    bytes_queued: int
    bytes_delivered: int


@judge("C36", C, R)
def c36(m: LingerAbort) -> Judgement:
    """SO_LINGER 0 avoids TIME_WAIT, and resets the connection, losing queued data."""
    no_time_wait = "TIME_WAIT" not in m.aborted_states and m.graceful_state == "TIME_WAIT"
    reset = m.resets_sent >= 1 and m.peer_dropped and m.peer_errno == "ECONNRESET"
    lost = m.bytes_queued - m.bytes_delivered
    seen = sorted({s or "gone" for s in m.aborted_states}) or ["nothing seen"]
    return Judgement(C if no_time_wait and reset and lost > 0 else R, (
        f"aborted connections' ends were seen {'/'.join(seen)}"
        f"{', never TIME_WAIT' if 'TIME_WAIT' not in m.aborted_states else ''}; a graceful close "
        f"ended {m.graceful_state or 'gone'}; {m.resets_sent} RST sent; the peer "
        f"{'was dropped by its kernel' if m.peer_dropped else 'was not dropped'} and recv() gave "
        f"{m.peer_errno or 'nothing'}; of {m.bytes_queued} bytes accepted by send(), "
        f"{m.bytes_delivered} reached the peer ({lost} lost)"
    ))

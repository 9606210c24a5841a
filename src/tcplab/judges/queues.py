"""Judges of the kernel-documentation claims about queues and TIME_WAIT: K05, K06, K08, K09.

These claims come from the kernel's own description of its sysctls
(Documentation/networking/ip-sysctl.rst; somaxconn also in
Documentation/admin-guide/sysctl/net.rst), in our words, and are judged by the same rule as
the articles' claims: a default the document quotes that differs here, the mechanism
holding, is partly with the version named; a detail of the document that the kernel
contradicts is partly too (as in ``tcplab.judges.tuning``). K07 (tcp_max_orphans) has no
judge: the cap is one for the whole machine, so no private namespace can lower it (see its
``unreproducible`` reason in ``tcplab.claims``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED


def _s(value: float | None, unit: str = "s", scale: float = 1.0) -> str:
    return "never" if value is None else f"{value * scale:.{1 if unit == 'ms' else 2}f} {unit}"


# -- K05: tcp_abort_on_overflow ----------------------------------------------------------

@dataclass(frozen=True)
class OverflowRun:
    """One setting of tcp_abort_on_overflow: a client whose handshake completes (its ACK
    and first data arrive) while the accept queue is held full on purpose, and a later
    client whose SYN arrives then; after ``hold_s`` the application accepts what waits."""

    setting: int
    hold_s: float
    #: the first client: seconds from its data to a reset (None: none), and the states
    #: when the hold ended (its own end; the listener's request socket, None: gone)
    reset_after_s: float | None
    client: str | None
    request: str | None
    #: once there was room: seconds until it was accepted (None: never), what it had sent
    recovered_after_s: float | None
    data: str
    #: the later client: its state when the hold ended, and after there was room
    late: str | None
    late_then: str | None
    overflows: int = 0  # TcpExt.ListenOverflows during the hold
    embryonic_rsts: int = 0  # TcpExt.EmbryonicRsts


@dataclass(frozen=True)
class AbortOnOverflow:
    """Claim K05: the two settings side by side, and the default of a fresh namespace."""

    runs: tuple[OverflowRun, ...]
    default: int | None
    sent: str = "second"  # the bytes the first client sent into the full queue


def _run(m: AbortOnOverflow, setting: int) -> OverflowRun | None:
    return next((r for r in m.runs if r.setting == setting), None)


@judge("K05", C, P, R)
def k05(m: AbortOnOverflow) -> Judgement:
    """With 1 the client whose handshake completes into the full queue is reset; with 0 it
    is kept (the request stays, the client ESTABLISHED) and recovers with its data once the
    application accepts. The document says new connections are reset when the application
    is too slow: a client whose SYN finds the queue full is not reset but waits for room
    with either setting; that condition, left out, makes it partly, as a default other than
    the documented 0 would."""
    on, off = _run(m, 1), _run(m, 0)
    resets = on is not None and on.reset_after_s is not None and on.request is None
    recovers = (off is not None and off.reset_after_s is None and off.client == "ESTABLISHED"
                and off.request == "SYN_RECV" and off.recovered_after_s is not None
                and off.data == m.sent)
    late_spared = on is not None and on.late == "SYN_SENT"
    verdict = R if not (resets and recovers) else P if late_spared or m.default != 0 else C

    def told(r: OverflowRun | None) -> str:
        if r is None:
            return "not measured"
        fate = (f"reset {_s(r.reset_after_s, 'ms', 1e3)} after its data" if r.reset_after_s
                is not None else f"not reset in {r.hold_s:.1f} s (client {r.client or 'gone'}, "
                f"request {r.request or 'gone'})")
        back = ("" if r.reset_after_s is not None else
                f", accepted {_s(r.recovered_after_s)} after room was made with "
                f"{r.data!r} intact" if r.recovered_after_s is not None and r.data == m.sent
                else ", never accepted with its data after room was made")
        return (f"{fate}{back}; a SYN meeting the full queue left its client "
                f"{r.late or 'gone'} (then {r.late_then or 'gone'}); {r.overflows} listen "
                f"overflows, {r.embryonic_rsts} embryonic resets")

    return Judgement(verdict, (
        f"a handshake completing into a full accept queue: with tcp_abort_on_overflow=1 "
        f"{told(on)}; with 0 {told(off)}; default {m.default}"
        + ("; so only handshakes under way when the queue fills are reset: a new SYN to a "
           "full queue is dropped and retried, not reset" if late_spared and resets else "")))


# -- K06: net.core.somaxconn -------------------------------------------------------------

#: The default since Linux 5.4 (19f92a030ca6, "net: increase SOMAXCONN to 4096"), and before.
SOMAXCONN_NOW, SOMAXCONN_BEFORE = 4096, 128


@dataclass(frozen=True)
class Somaxconn:
    """listen() asking for more and for less than net.core.somaxconn (claim K06): the limit
    sock_diag reports for each listener (ss's Send-Q), and how many handshakes the capped
    one queued, with nobody accepting (its accept queue held full on purpose)."""

    setting: int
    asked: int
    limit: int | None
    asked_below: int
    limit_below: int | None
    clients: int
    queued: int
    syn_sent: int  # clients whose SYNs the full queue dropped (still SYN_SENT)
    default: int | None


@judge("K06", C, P, R)
def k06(m: Somaxconn) -> Judgement:
    """The backlog above the setting is cut to it, the one below kept, and the queue holds
    what the cut backlog allows (the kernel's test is "more than the backlog": one more than
    it); a default other than 4096 is partly, naming Linux 5.4's change."""
    capped = (m.limit == m.setting and m.limit_below == m.asked_below
              and 0 < m.queued <= m.setting + 1 and m.syn_sent == m.clients - m.queued > 0)
    verdict = R if not capped else C if m.default == SOMAXCONN_NOW else P
    history = ("" if m.default == SOMAXCONN_NOW else
               f"; the default {m.default} is not the documented {SOMAXCONN_NOW} (it was "
               f"{SOMAXCONN_BEFORE} before Linux 5.4, 19f92a030ca6)")
    return Judgement(verdict, (
        f"with somaxconn={m.setting}, listen({m.asked}) got a limit of {m.limit} and "
        f"listen({m.asked_below}) {m.limit_below}; of {m.clients} clients {m.queued} completed "
        f"into the capped queue (the kernel lets it hold one more than its limit) and "
        f"{m.syn_sent} were left in SYN_SENT; fresh-namespace default {m.default}{history}"))


# -- K08: tcp_tw_reuse_delay ---------------------------------------------------------------

#: A reuse within this many ms after the delay is "at" the delay: the probe retries every
#: 20 ms, and closing the held connections and a loaded machine add the rest.
REUSE_LATE_MS = 300.0
#: Clock slack below the delay (the TIME_WAITs begin just after the probe's clock starts).
REUSE_EARLY_MS = 5.0
REUSE_DELAY_DEFAULT = 1000


@dataclass(frozen=True)
class ReuseDelayTry:
    """One namespace: tcp_tw_reuse and tcp_tw_reuse_delay, every usable port held by a
    TIME_WAIT on purpose, connect() retried: when one took a TIME_WAIT's port over."""

    reuse: int
    delay_ms: int
    after_s: float | None  # since the TIME_WAITs began; None: not within the window
    first_try: str  # the errno of the first connect()


@dataclass(frozen=True)
class TwReuseDelay:
    """Claim K08: several delays with reuse on, a control with reuse off, the default."""

    tries: tuple[ReuseDelayTry, ...]
    window_s: float
    default: int | None


@judge("K08", C, P, R)
def k08(m: TwReuseDelay) -> Judgement:
    """With reuse on, each TIME_WAIT is taken over no sooner than its delay (REUSE_EARLY_MS
    slack) and within REUSE_LATE_MS after it; with reuse off, never. Sooner, or never with
    reuse on: refuted. Later than the tolerance, or a default other than 1000 ms: partly."""
    parts, early, missing, late = [], False, False, False
    for t in m.tries:
        ms = None if t.after_s is None else t.after_s * 1e3
        if t.reuse == 0:
            missing |= ms is not None  # reuse off must never take a TIME_WAIT over
        elif ms is None:
            missing = True
        else:
            early |= ms < t.delay_ms - REUSE_EARLY_MS
            late |= ms > t.delay_ms + REUSE_LATE_MS
        parts.append(f"reuse={t.reuse}, delay {t.delay_ms} ms: "
                     + (f"taken over after {ms:.0f} ms" if ms is not None else
                        f"not taken over in {m.window_s:.1f} s (first try {t.first_try})"))
    ran = any(t.reuse for t in m.tries)
    verdict = (R if early or missing or not ran else
               P if late or m.default != REUSE_DELAY_DEFAULT else C)
    return Judgement(verdict, (
        "; ".join(parts) + f" (at the delay: no sooner than {REUSE_EARLY_MS:.0f} ms before it, "
        f"at most {REUSE_LATE_MS:.0f} ms after); fresh-namespace default {m.default} ms"))


# -- K09: tcp_rfc1337 ----------------------------------------------------------------------

@dataclass(frozen=True)
class ResetInTimeWait:
    """One setting of tcp_rfc1337: a forged in-window reset injected at a TIME_WAIT, and
    the same forging at an ESTABLISHED connection (the control: the kernel accepts it)."""

    setting: int
    hold_s: float
    time_wait_then: str | None  # the closer's state after the hold (None: gone)
    ended_after_s: float | None  # seconds from the reset to the TIME_WAIT's end
    control_ended_after_s: float | None  # the ESTABLISHED control, reset after (None: not)


@dataclass(frozen=True)
class Rfc1337:
    """Claim K09: both settings and the default of a fresh namespace."""

    runs: tuple[ResetInTimeWait, ...]
    default: int | None


@judge("K09", C, P, R)
def k09(m: Rfc1337) -> Judgement:
    """With 1 the TIME_WAIT outlives the reset (RFC 1337): the mechanism. The document says
    the default 0 also prevents TIME_WAIT assassination; a reset ending the TIME_WAIT with 0
    contradicts that detail: partly. Controls that did not reset their ESTABLISHED
    connection leave nothing shown: refuted."""
    on = next((r for r in m.runs if r.setting == 1), None)
    off = next((r for r in m.runs if r.setting == 0), None)
    controls = bool(m.runs) and all(r.control_ended_after_s is not None for r in m.runs)
    ignores = on is not None and on.time_wait_then == "TIME_WAIT" and on.ended_after_s is None
    killed = off is not None and off.ended_after_s is not None
    verdict = R if not (controls and ignores) else P if killed or m.default != 0 else C

    def told(r: ResetInTimeWait | None) -> str:
        if r is None:
            return "not measured"
        fate = (f"ended {_s(r.ended_after_s, 'ms', 1e3)} after it" if r.ended_after_s is not None
                else f"still {r.time_wait_then or 'gone'} {r.hold_s:.1f} s later")
        control = ("reset its ESTABLISHED control" if r.control_ended_after_s is not None
                   else "did not reset its ESTABLISHED control")
        return f"the TIME_WAIT {fate} (the same forged reset {control})"

    return Judgement(verdict, (
        f"an in-window reset at a TIME_WAIT: with tcp_rfc1337=1 {told(on)}; with 0 "
        f"{told(off)}; default {m.default}"
        + ("; so the default lets a reset assassinate the TIME_WAIT, the reverse of the "
           "document's wording" if killed and ignores else "")))

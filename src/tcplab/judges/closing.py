"""Judges of how connections close: C02, C03, C10 (graceful close), and the states around it.

Paths are lists of state names as the kernel reported them, ``None`` for an end the kernel
no longer reports (gone). Snapshot paths can miss states that last less than a poll
(FIN_WAIT1 on loopback lasts until the peer's delayed ACK, a few ms); where the kernel's own
transitions were traced, ``traced`` paths miss nothing and are preferred.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge, path_text
from tcplab.verdict import Verdict

C, R = Verdict.CONFIRMED, Verdict.REFUTED


def _in_order(path: tuple[str | None, ...], *wanted: str | None) -> bool:
    """True if ``path`` passes through ``wanted`` in this order (others may come between)."""
    remaining = list(wanted)
    for state in path:
        if remaining and state == remaining[0]:
            remaining.pop(0)
    return not remaining


@dataclass(frozen=True)
class GracefulClose:
    """Both ends of one connection that the client closes first and the server second."""

    #: each end's states as observed (snapshots), in order; None: gone
    client_path: tuple[str | None, ...]
    server_path: tuple[str | None, ...]
    #: each end's states from the kernel's own transitions (empty when not traced)
    client_traced: tuple[str, ...] = ()
    server_traced: tuple[str, ...] = ()


@judge("C02", C, R)
def c02(m: GracefulClose) -> Judgement:
    """The closer goes FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT, its peer CLOSE_WAIT -> LAST_ACK.

    FIN_WAIT1 is required only where transitions were traced: a snapshot can miss it."""
    client = m.client_traced or m.client_path
    server = m.server_traced or m.server_path
    closer = (("FIN_WAIT1",) if m.client_traced else ()) + ("FIN_WAIT2", "TIME_WAIT")
    holds = _in_order(client, "ESTABLISHED", *closer) and _in_order(
        server, "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK")
    source = "traced transitions" if m.client_traced else "snapshots (FIN_WAIT1 too brief to sample)"
    return Judgement(
        C if holds else R,
        f"active closer {path_text(client)}; passive side {path_text(server)} ({source})",
    )


@dataclass(frozen=True)
class FinAckedByKernel:
    """The passive side after the peer's FIN: who acknowledged it, and what the app saw."""

    #: the closer reached FIN_WAIT2 (its FIN acknowledged) before the server's app read
    acked_before_read: bool
    #: Recv-Q of the server in CLOSE_WAIT before reading: 1 is the FIN itself, unread
    recv_q_before_read: int | None
    #: what the server's read returned (bytes), and its Recv-Q afterwards
    read_bytes: int | None
    recv_q_after_read: int | None
    #: the server was still CLOSE_WAIT after reading EOF, until its close()
    close_wait_until_close: bool
    #: the state the server's close() moved it to (LAST_ACK: its FIN went out then)
    after_close: str | None


@judge("C03", C, R)
def c03(m: FinAckedByKernel) -> Judgement:
    """The kernel ACKs the FIN alone; the app reads EOF; only close() sends the app's FIN."""
    by_kernel = m.acked_before_read and m.recv_q_before_read == 1
    eof = m.read_bytes == 0 and m.recv_q_after_read == 0
    fin_on_close = m.close_wait_until_close and m.after_close == "LAST_ACK"
    return Judgement(
        C if by_kernel and eof and fin_on_close else R,
        f"the closer {'reached' if m.acked_before_read else 'did not reach'} FIN_WAIT2 before the "
        f"server's application read anything (server Recv-Q {m.recv_q_before_read}: "
        f"{'the FIN alone' if m.recv_q_before_read == 1 else 'not the FIN alone'}); the read "
        f"returned {m.read_bytes} bytes (Recv-Q then {m.recv_q_after_read}); the server "
        f"{'stayed' if m.close_wait_until_close else 'did not stay'} in CLOSE_WAIT until close(), "
        f"which moved it to {m.after_close or 'gone'}",
    )


@dataclass(frozen=True)
class WhoHoldsTimeWait:
    """Where TIME_WAIT ended up after a close in which ``first`` closed before ``second``."""

    #: the first closer's state after its fd was closed too, and its timewait timer (s left)
    first_state: str | None
    first_timewait_s: float | None
    #: every state the second closer was seen in, and where it ended (None: gone)
    second_path: tuple[str | None, ...]
    first: str = "client"
    second: str = "server"


@judge("C10", C, R)
def c10(m: WhoHoldsTimeWait) -> Judgement:
    """Only the end that closed first holds TIME_WAIT (with its timewait timer)."""
    first_tw = m.first_state == "TIME_WAIT" and m.first_timewait_s is not None
    second_tw = "TIME_WAIT" in m.second_path
    ended = m.second_path[-1:] == (None,)
    timer = ("no timewait timer" if m.first_timewait_s is None
             else f"timer {m.first_timewait_s:.1f} s left")
    return Judgement(
        C if first_tw and not second_tw and ended else R,
        f"the {m.first} (closed first) is {m.first_state or 'gone'} after closing its fd, "
        f"{timer}; the {m.second} (closed second) went {path_text(m.second_path)}"
        f"{', through TIME_WAIT' if second_tw else ', never in TIME_WAIT'}",
    )


@dataclass(frozen=True)
class SimultaneousClose:
    """Both ends shut down while a valve on lo (tc tbf) held their FINs, then let both FINs
    go at once: a close in which the FINs cross (claim C06).

    The valve then holds the ACKs of the FINs for a while, so that CLOSING lasts long enough
    for snapshots too; on a real path it lasts one round trip."""

    client_path: tuple[str | None, ...] = ()
    server_path: tuple[str | None, ...] = ()
    client_traced: tuple[str, ...] = ()
    server_traced: tuple[str, ...] = ()
    #: lab seconds at which each end's FIN went on the wire (capture), None: not captured
    client_fin_t: float | None = None
    server_fin_t: float | None = None
    #: when the peer's first segment acknowledging that FIN went on the wire
    client_fin_acked_t: float | None = None
    server_fin_acked_t: float | None = None
    #: how long both ends were seen (snapshots) in CLOSING together, while the ACKs were held
    closing_held_s: float | None = None


def _through(traced: tuple[str, ...], path: tuple[str | None, ...], state: str) -> str | None:
    """How ``state`` was seen on an end: "traced", "snapshot", both, or None."""
    how = [name for name, seen in (("traced", state in traced), ("snapshot", state in path)) if seen]
    return " and ".join(how) or None


@judge("C06", C, R)
def c06(m: SimultaneousClose) -> Judgement:
    """Both ends pass CLOSING when their FINs cross (each sent before the other's arrived)."""
    times = (m.client_fin_t, m.server_fin_t, m.client_fin_acked_t, m.server_fin_acked_t)
    sent, acked = [t for t in times[:2] if t is not None], [t for t in times[2:] if t is not None]
    crossed = len(sent) == 2 and len(acked) == 2 and max(sent) < min(acked)
    how = {end: _through(traced, path, "CLOSING") for end, traced, path in (
        ("client", m.client_traced, m.client_path), ("server", m.server_traced, m.server_path))}
    both = all(how.values())
    if crossed:
        gap = max(sent) - min(sent)
        wire = (f"both FINs went on the wire {gap * 1e6:.0f} µs apart, before either was "
                f"acknowledged (the first ACK of a FIN {(min(acked) - max(sent)) * 1e3:.1f} ms "
                "after the second FIN)")
    else:
        wire = ("the FINs did not cross: " + ", ".join(
            f"{end} FIN {'not captured' if t is None else f'at {t:.4f} s'}, acked "
            f"{'never' if a is None else f'at {a:.4f} s'}" for end, t, a in (
                ("client", m.client_fin_t, m.client_fin_acked_t),
                ("server", m.server_fin_t, m.server_fin_acked_t))))
    held = ("" if m.closing_held_s is None
            else f"; both seen in CLOSING together for {m.closing_held_s:.2f} s (the ACKs held)")
    return Judgement(
        C if crossed and both else R,
        f"{wire}; CLOSING on the client: {how['client'] or 'never'}, on the server: "
        f"{how['server'] or 'never'}{held} (client {path_text(m.client_traced or m.client_path)}; "
        f"server {path_text(m.server_traced or m.server_path)})",
    )


#: FIN_WAIT2 shorter than this, with no segment arriving meanwhile, lasted only while the
#: kernel processed the one segment that carried FIN and ACK (microseconds): no tool or peer
#: can see it. Longer, a poll of ss could catch it and the peer could send into it.
FIN_WAIT2_UNSEEN_US = 1000.0


@dataclass(frozen=True)
class FinAckTogether:
    """The client in FIN_WAIT1 receiving, in one segment, the server's FIN and the ACK of its
    own FIN (claim C05). Connections are tried until one such segment happens."""

    #: connections tried, and the segment that carried both (None: it never happened)
    attempts: int
    combined_segment: str | None
    #: the client's states (snapshots, None: gone) and traced transitions (empty: not traced)
    client_path: tuple[str | None, ...] = ()
    client_traced: tuple[str, ...] = ()
    #: how long the kernel's FIN_WAIT2 lasted by the trace (µs), None: never traced in it
    fin_wait2_us: float | None = None
    #: segments the server sent that arrived while the client was in FIN_WAIT2
    segments_during_fin_wait2: int = 0


@judge("C05", C, R)
def c05(m: FinAckTogether) -> Judgement:
    """After one FIN+ACK segment, no observer or peer sees FIN_WAIT2: the client goes to
    TIME_WAIT. A FIN_WAIT2 the kernel passes through while processing that one segment is a
    note (shorter than FIN_WAIT2_UNSEEN_US and with no segment meanwhile)."""
    path = m.client_traced or tuple(s for s in m.client_path if s is not None)
    start = next((s for s in ("FIN_WAIT1", "ESTABLISHED") if s in path), None)
    after = path[len(path) - path[::-1].index(start):] if start else path
    inside = (m.fin_wait2_us is not None and m.fin_wait2_us < FIN_WAIT2_UNSEEN_US
              and m.segments_during_fin_wait2 == 0)
    seen = "FIN_WAIT2" in m.client_path or (m.fin_wait2_us is not None and not inside)
    visible = tuple(s for s in after if not (s == "FIN_WAIT2" and inside))
    to_tw = visible[:1] == ("TIME_WAIT",)
    tried = f"in attempt {m.attempts}" if m.combined_segment else f"in none of {m.attempts} attempts"
    note = (f"; note: the kernel's own transitions ({path_text(after)}) pass through FIN_WAIT2 for "
            f"{m.fin_wait2_us:.0f} µs inside the processing of that segment (ACK first, then FIN), "
            f"under the {FIN_WAIT2_UNSEEN_US:.0f} µs no poll or peer can see, no segment between"
            if inside else "")
    held = ("" if m.fin_wait2_us is None or inside else
            f"; FIN_WAIT2 lasted {m.fin_wait2_us:.0f} µs with {m.segments_during_fin_wait2} "
            "segments arriving meanwhile")
    return Judgement(
        C if m.combined_segment and to_tw and not seen else R,
        f"one segment carried the server's FIN and the ACK of the client's FIN {tried}"
        f"{f' ({m.combined_segment})' if m.combined_segment else ''}; after FIN_WAIT1 the client "
        f"went {path_text(visible)} as a poll or the peer can tell "
        f"({'traced' if m.client_traced else 'snapshots'}), FIN_WAIT2 "
        f"{'seen by a snapshot' if 'FIN_WAIT2' in m.client_path else 'never seen by a snapshot'}"
        f"{held}{note}",
    )


#: The eleven states of the articles' diagram, as the kernel names them.
ELEVEN = ("LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2",
          "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT", "CLOSED")


@dataclass(frozen=True)
class StatesObserved:
    """Which of the eleven states one run produced, and how they were seen (claim C01)."""

    #: (state, longest stretch in seconds) for each state a snapshot (sock_diag) reported
    seen_s: tuple[tuple[str, float], ...]
    #: states the kernel's own transitions (trace) went through
    traced: tuple[str, ...]
    #: the holder scenarios run, and "id: reason" for those that failed
    parts: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


@judge("C01", C, Verdict.PARTLY, R)
def c01(m: StatesObserved) -> Judgement:
    """All eleven seen by an ordinary observer (a snapshot, as ss/netstat take them):
    confirmed. One seen only by tracing the kernel: produced, but not observable the way the
    articles mean (netstat): partly. One neither seen nor traced: refuted."""
    seen = dict(m.seen_s)
    traced_only = [s for s in ELEVEN if s not in seen and s in m.traced]
    missing = [s for s in ELEVEN if s not in seen and s not in m.traced]
    verdict = R if missing else Verdict.PARTLY if traced_only else C
    shortest = min(seen.items(), key=lambda kv: kv[1], default=None)
    return Judgement(
        verdict,
        f"{len([s for s in ELEVEN if s in seen])} of 11 states seen by snapshots"
        + (f" (shortest stretch {shortest[0]} {shortest[1]:.2f} s)" if shortest else "")
        + (f"; only in the kernel's traced transitions: {', '.join(traced_only)}" if traced_only else "")
        + (f"; neither seen nor traced: {', '.join(missing)}" if missing else "")
        + f"; from {len(m.parts)} holder scenarios"
        + (f", failed: {'; '.join(m.failed)}" if m.failed else ""),
    )


#: An ordinary handshake's SYN_RECV shorter than this (traced) is brief: a poll of ss (every
#: few ms at best) cannot catch it.
BRIEF_US = 1000.0
#: Held at least this long (of the scenario's 1 s hold, less a poll's slack) is lingering.
LINGER_S = 0.9


@dataclass(frozen=True)
class SynRecvLinger:
    """How long the server's side stayed SYN_RECV in four handshakes (claim C07)."""

    #: an ordinary handshake: SYN_RECV traced (µs, None: not traced), and seen by a snapshot
    ordinary_us: float | None
    ordinary_seen: bool
    #: seconds SYN_RECV held (up to 1 s): the final ACK lost before the listener
    withheld_s: float | None
    #: ... the client's ACK sent and arrived, but the accept queue was full; and how many
    #: ACKs that client was captured sending into the full queue (None: no capture)
    full_queue_s: float | None = None
    full_queue_acks: int | None = None
    #: ... the client's ACK sent, the listener has TCP_DEFER_ACCEPT (waits for data)
    deferred_s: float | None = None


@judge("C07", C, Verdict.PARTLY, R)
def c07(m: SynRecvLinger) -> Judgement:
    """Brief in an ordinary handshake, lingering when the final ACK is withheld: the
    mechanism. Lingering also when the client did send its ACK (a full accept queue, or
    TCP_DEFER_ACCEPT) contradicts "only": a condition the articles leave out."""
    brief = not m.ordinary_seen and (m.ordinary_us is None or m.ordinary_us < BRIEF_US)
    lingers = m.withheld_s is not None and m.withheld_s >= LINGER_S
    acked = m.full_queue_acks is None or m.full_queue_acks > 0  # its ACK did arrive
    others = [what for what, held in (("a full accept queue", m.full_queue_s if acked else None),
                                      ("TCP_DEFER_ACCEPT", m.deferred_s))
              if held is not None and held >= LINGER_S]

    def s(value: float | None) -> str:
        return "not measured" if value is None else f"{value:.2f} s"

    ordinary = ("untimed (not traced)" if m.ordinary_us is None
                else f"{m.ordinary_us:.0f} µs by the trace")
    return Judgement(
        R if not (brief and lingers) else Verdict.PARTLY if others else C,
        f"an ordinary handshake's SYN_RECV lasted {ordinary} (brief: under {BRIEF_US:.0f} µs), "
        f"{'seen' if m.ordinary_seen else 'never seen'} by a snapshot; held (lingering: at "
        f"least {LINGER_S} s) with the final ACK lost: {s(m.withheld_s)}; with the ACK sent, "
        f"into a full accept queue: {s(m.full_queue_s)} ("
        f"{'ACKs not captured' if m.full_queue_acks is None else f'{m.full_queue_acks} ACK(s) from the client captured'}"
        "), to a TCP_DEFER_ACCEPT listener: "
        f"{s(m.deferred_s)}"
        + (f"; so withholding the ACK is not the only way: {' and '.join(others)} also keep it"
           if others and brief and lingers else ""),
    )


@dataclass(frozen=True)
class HalfClose:
    """The server sending after the client's FIN (shutdown(SHUT_WR)), until it closes too
    (claim C09)."""

    #: bytes the server sent after the client's FIN, bytes that reached the client before
    #: the server closed, and whether they were the same bytes (sha256)
    sent: int
    delivered: int
    intact: bool
    #: each end's states as seen after each write was read
    client_states: tuple[str | None, ...] = ()
    server_states: tuple[str | None, ...] = ()
    #: where the server's own close() then took the client
    client_after_close: str | None = None


@judge("C09", C, R)
def c09(m: HalfClose) -> Judgement:
    """Every byte the not-yet-closed side sends arrives while the closer sits in FIN_WAIT2
    (and its peer in CLOSE_WAIT): one direction closed, the other open."""
    half = set(m.client_states) == {"FIN_WAIT2"} and set(m.server_states) == {"CLOSE_WAIT"}
    whole = m.sent > 0 and m.delivered == m.sent and m.intact
    return Judgement(
        C if half and whole else R,
        f"after the client's FIN the server sent {m.sent} bytes, {m.delivered} arrived "
        f"({'intact' if m.intact else 'not intact'}: sha256 {'equal' if m.intact else 'differs'}) "
        f"with the client in {'/'.join(sorted({s or 'gone' for s in m.client_states})) or 'nothing seen'} "
        f"and the server in {'/'.join(sorted({s or 'gone' for s in m.server_states})) or 'nothing seen'}; "
        f"the server's close() then took the client to {m.client_after_close or 'gone'}",
    )

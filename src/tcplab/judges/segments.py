"""Judges of how segments and states add up over many connections: C04, C08 (which segments
and states a close produces, and how often), C12 (the re-sent FIN), C14 and C17 (where
TIME_WAIT gathers, and how many).

Where a claim speaks of frequency ("usually", "rarely"), its measurement holds counts over
many trials and the judge states the threshold it applies to the measured share. Figures
cited from the kernel (net/ipv4/tcp_input.c ``tcp_fin``: the passive side enters
"pingpong" mode on a FIN, so its ACK of the FIN is delayed; include/net/tcp.h
``TCP_ATO_MIN`` = 40 ms once data was received, ``TCP_DELACK_MAX`` = 200 ms at most;
net/ipv4/tcp_output.c ``tcp_send_delayed_ack``) explain the figures; the judges decide on the figures alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.judges import Judgement, judge
from tcplab.verdict import Verdict

C, P, R = Verdict.CONFIRMED, Verdict.PARTLY, Verdict.REFUTED


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


# -- C04 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseWay:
    """``closes`` connections closed the same way by the passive side (after the active
    side's FIN), each classified from its captured segments."""

    way: str
    closes: int
    #: the passive side's first segment acknowledging the FIN did not carry its own FIN
    #: (a lone ACK, or data): ACK and FIN travelled apart, four segments of close
    apart: int
    #: that segment carried the passive side's FIN too: three segments of close
    together: int


@dataclass(frozen=True)
class SegmentCounts:
    """Handshakes and closes counted over many connections (segments captured on loopback)."""

    #: handshakes captured, and how many were exactly SYN, SYN|ACK, ACK
    handshakes: int
    three_segment_handshakes: int
    closes: tuple[CloseWay, ...]
    #: every TCP segment of the run by the kernel's count (Tcp.OutSegs) and by the capture
    counted_segments: int = 0
    captured_segments: int = 0


#: "usually": in more than half of the closes of a way
USUALLY = 0.5


@judge("C04", C, P, R)
def c04(m: SegmentCounts) -> Judgement:
    """Three segments open (SYN|ACK in one); closes take four "usually" (> USUALLY of them).

    Confirmed if every handshake was SYN, SYN|ACK, ACK and, in every way of closing
    measured, ACK and FIN went apart in more than half the closes. Partly if that majority
    holds in some ways and not others: four segments then depend on how the passive
    application closes, which the article leaves out. Refuted if a handshake took another
    shape, or in no way of closing did ACK and FIN usually travel apart."""
    handshake_ok = m.handshakes > 0 and m.three_segment_handshakes == m.handshakes
    shares = [(w, _share(w.apart, w.apart + w.together)) for w in m.closes]
    usual = [w.way for w, s in shares if s is not None and s > USUALLY]
    ways = "; ".join(f"{w.way}: {w.apart} of {w.apart + w.together} apart ({_pct(s)})"
                     + (f", {w.closes - w.apart - w.together} unclassified"
                        if w.closes > w.apart + w.together else "")
                     for w, s in shares) or "no close measured"
    if not handshake_ok or not usual:
        verdict = R
    elif len(usual) == len(m.closes):
        verdict = C
    else:
        verdict = P
    return Judgement(verdict, (
        f"{m.three_segment_handshakes} of {m.handshakes} handshakes were SYN, SYN|ACK, ACK; "
        f"closes where the passive side's ACK of the FIN left without its FIN (four segments) "
        f"-- {ways}; \"usually\" read as more than {USUALLY:.0%}, met in "
        f"{len(usual)} of {len(m.closes)} ways"
        + (f"; the kernel counted {m.counted_segments} segments, the capture saw "
           f"{m.captured_segments}" if m.counted_segments or m.captured_segments else "")))


# -- C08 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FinWaitSampling:
    """Periodic dumps of every socket during one workload, as an operator's ``ss`` would see
    them: how many socket-observations were FIN_WAIT1 and FIN_WAIT2, and how many
    connections were seen at least once in each."""

    workload: str
    connections: int
    samples: int
    elapsed_s: float
    fin_wait1_seen: int
    fin_wait2_seen: int
    conns_in_fin_wait1: int
    conns_in_fin_wait2: int

    def mean_ms(self, seen: int) -> float | None:
        """Mean time a connection spent in a state (observations x mean interval / conns)."""
        if not self.samples or not self.connections:
            return None
        return seen * self.elapsed_s / self.samples / self.connections * 1e3


@dataclass(frozen=True)
class FinWaitShares:
    """The same sampling over two workloads of connections closed by one side.

    ``peer_closes_later``: the peer application closes ``peer_delay_s`` after the FIN (the
    article's situation: it may still have work or data). ``slow_reader``: the closer still
    has data in flight and the peer reads nothing for ``reader_pause_s`` (FIN_WAIT1 held on
    purpose: the FIN waits behind data the peer's window cannot take)."""

    peer_closes_later: FinWaitSampling
    slow_reader: FinWaitSampling
    peer_delay_s: float
    reader_pause_s: float


#: FIN_WAIT1 is "rarely seen" if at most this share of the FIN_WAIT observations are it
RARE = 0.25


def _fw_text(s: FinWaitSampling) -> str:
    share = _share(s.fin_wait1_seen, s.fin_wait1_seen + s.fin_wait2_seen)
    fw1, fw2 = s.mean_ms(s.fin_wait1_seen), s.mean_ms(s.fin_wait2_seen)
    mean = ("" if fw1 is None or fw2 is None
            else f", about {fw1:.0f} ms in FIN_WAIT1 and {fw2:.0f} ms in FIN_WAIT2 per connection")
    return (f"{s.workload}: {s.samples} samples of {s.connections} connections saw FIN_WAIT1 "
            f"{s.fin_wait1_seen} times and FIN_WAIT2 {s.fin_wait2_seen} times (FIN_WAIT1 "
            f"{_pct(share)} of them; connections seen in each: {s.conns_in_fin_wait1} and "
            f"{s.conns_in_fin_wait2}){mean}")


@judge("C08", C, R)
def c08(m: FinWaitShares) -> Judgement:
    """FIN_WAIT1 rare, FIN_WAIT2 more often, judged on observation shares.

    Confirmed if, with peers that close later, FIN_WAIT1 is at most RARE of the FIN_WAIT
    observations (so FIN_WAIT2 at least three times as often); refuted if it is not, or
    nothing was seen. The slow reader (the closer's FIN held behind data the peer does not
    read) is the case article 002 itself sets apart, where the peer cannot ACK at once: it
    is reported as a note, not held against the claim."""
    later = m.peer_closes_later
    share = _share(later.fin_wait1_seen, later.fin_wait1_seen + later.fin_wait2_seen)
    verdict = R if share is None or share > RARE else C
    slow = m.slow_reader
    return Judgement(verdict, (
        f"peer closes {m.peer_delay_s:g} s after the FIN -- {_fw_text(later)}; closer's data "
        f"in flight, peer reads after {m.reader_pause_s:g} s (held on purpose) -- "
        f"{_fw_text(slow)}; \"rarely\" read as at most {RARE:.0%} of the FIN_WAIT observations"))


# -- C12 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResentFin:
    """A peer's FIN re-sent because the last ACK was lost, sent to an end in TIME_WAIT and
    to an end that skipped it (closed with SO_LINGER 0, nothing left in the tables)."""

    #: the active closer's state when the re-sent FIN arrived
    time_wait_state: str | None
    #: flags of the answer to the re-sent FIN ("" if none came), and whether it acked the FIN
    time_wait_answer: str
    time_wait_acks_fin: bool
    #: what the peer's application read from SO_ERROR afterwards ("none": no error)
    time_wait_peer_error: str | None
    closed_answer: str
    closed_peer_error: str | None
    #: the timewait timer read later than it would have without a restart (a note)
    timer_restarted: bool | None = None


def _error(name: str | None) -> str:
    return "no error" if name == "none" else name or "nothing (not read)"


def _flags(answer: str) -> set[str]:
    return set(answer.split("|")) if answer else set()


@judge("C12", C, R)
def c12(m: ResentFin) -> Judgement:
    """TIME_WAIT re-sends the ACK (no error for the peer); a CLOSED end answers RST and the
    peer sees an error."""
    tw = _flags(m.time_wait_answer)
    tw_acks = (m.time_wait_state == "TIME_WAIT" and tw >= {"ACK"} and "RST" not in tw
               and m.time_wait_acks_fin and m.time_wait_peer_error == "none")
    closed_resets = "RST" in _flags(m.closed_answer) and m.closed_peer_error not in (None, "none")
    restart = ("" if m.timer_restarted is None
               else f"; its timewait timer was {'' if m.timer_restarted else 'not '}restarted")
    return Judgement(C if tw_acks and closed_resets else R, (
        f"the re-sent FIN got [{m.time_wait_answer or 'no answer'}] from the end in "
        f"{m.time_wait_state or 'no state'} ({'acking' if m.time_wait_acks_fin else 'not acking'}"
        f" the FIN), and the peer's application read {_error(m.time_wait_peer_error)}"
        f"{restart}; from an end that skipped TIME_WAIT it got "
        f"[{m.closed_answer or 'no answer'}], and the peer read {_error(m.closed_peer_error)}"))


# -- C14 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhereTimeWaitGathers:
    """TIME_WAIT sockets on each side after ``connections`` closes in each order (counted on
    the listener's port: server side; on other ports: client side)."""

    connections: int
    server_first_at_server: int
    server_first_at_clients: int
    client_first_at_server: int
    client_first_at_clients: int


#: share of the connections that must leave their TIME_WAIT where expected (none elsewhere)
GATHER = 0.99


@judge("C14", C, R)
def c14(m: WhereTimeWaitGathers) -> Judgement:
    """Whichever side closes first keeps the TIME_WAIT: server-first piles them at the
    server, client-first at the clients (at least GATHER of the connections, none across)."""
    n = m.connections
    server_first = n > 0 and m.server_first_at_server >= GATHER * n and m.server_first_at_clients == 0
    client_first = n > 0 and m.client_first_at_clients >= GATHER * n and m.client_first_at_server == 0
    return Judgement(C if server_first and client_first else R, (
        f"{n} connections the server closed first left {m.server_first_at_server} TIME_WAIT at "
        f"the server and {m.server_first_at_clients} at the clients; {n} the clients closed "
        f"first left {m.client_first_at_server} at the server and {m.client_first_at_clients} "
        f"at the clients (expected: at least {GATHER:.0%} on the first closer's side, none on "
        f"the other)"))


# -- C17 ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestsTimeWait:
    """``requests`` request/response exchanges made with one connection each (the client
    closing first) and over one kept-alive connection: what each left and cost."""

    requests: int
    short_time_wait: int
    short_connections: int
    short_segments_per_request: float
    keepalive_time_wait: int
    keepalive_connections: int
    keepalive_segments_per_request: float
    short_us_per_request: float | None = None
    keepalive_us_per_request: float | None = None


#: one TIME_WAIT per short-lived request: at least this share of the requests
PILE = 0.99


@judge("C17", C, R)
def c17(m: RequestsTimeWait) -> Judgement:
    """Short connections leave about one TIME_WAIT per request (>= PILE); keep-alive leaves at
    most one per connection it opened, opens fewer connections and sends fewer segments."""
    piles = m.requests > 0 and m.short_time_wait >= PILE * m.requests
    avoids = (m.keepalive_time_wait <= m.keepalive_connections < m.short_connections
              and m.keepalive_segments_per_request < m.short_segments_per_request)
    times = ("" if not m.short_us_per_request or not m.keepalive_us_per_request
             else f"; {m.short_us_per_request:.0f} against {m.keepalive_us_per_request:.0f} us "
                  "per request")
    return Judgement(C if piles and avoids else R, (
        f"{m.requests} requests left {m.short_time_wait} TIME_WAIT sockets over "
        f"{m.short_connections} connections (one per request) against {m.keepalive_time_wait} "
        f"over {m.keepalive_connections} kept-alive connection(s); "
        f"{m.short_segments_per_request:.1f} against {m.keepalive_segments_per_request:.1f} "
        f"segments sent per request{times} (piling up read as at least {PILE:.0%} of the "
        "requests)"))

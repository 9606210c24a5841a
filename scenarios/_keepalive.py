"""Keepalive against a dead peer, and CLOSE_WAIT sockets left to it: how long until the kernel
gives up, and what it did meanwhile. Measured only: the judges (tcplab.judges.timers) decide.

The peer is made dead with ``packets.deafen`` on its socket: it stays in the kernel's
tables, ESTABLISHED, but every segment addressed to it is discarded before TCP sees it, like
a host that lost power or a cable that was cut. That is deterministic, silent and touches
nothing else: this kernel has no netem (tc cannot drop packets on ``lo``), and taking ``lo``
down would silence every other connection of the scenario as well.

The last activity is the client receiving the server's reply (its receive timestamp is what
the keepalive timer counts from); the filter goes on once the server's reply is
acknowledged, so no retransmission can refresh that timestamp. Then the client blocks in
recv() until the kernel fails it, while its keepalive timer (sock_diag: kind, time left,
probes sent) is polled.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import trio

from _defaults import fresh_netns_ints
from tcplab import Connection, End, Lab, SocketRecord, TcpState, TimerKind, Verdicts
from tcplab.expect import ExpectationFailed, eventually, reaches
from tcplab.judges.timers import KeepaliveRule
from tcplab.kernel.packets import deafen
from tcplab.kernel.procfs import counter_delta, netstat_counters
from tcplab.lab import errno_name
from tcplab.measure import state_of
from tcplab.scenario import capped

S = TcpState
POLL_S = 0.05
NAMES = ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl",
         "net.ipv4.tcp_keepalive_probes")


@dataclass
class Detection:
    """When and how the kernel declared the peer dead."""

    expected_s: float  # idle + interval x probes
    detected_s: float = 0.0  # from the last data received to recv() failing
    errno: int = 0
    probes_seen: int = 0  # the highest probe count sock_diag showed on the keepalive timer
    first_probe_s: float | None = None  # when sock_diag first showed a probe out
    timer_kinds: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    after: str = ""  # what the client's socket is once recv failed
    peer_after: str = ""

    @property
    def errno_name(self) -> str:
        return errno_name(self.errno)

    def to_json(self) -> dict[str, Any]:
        return {
            "expected_s": self.expected_s, "detected_s": round(self.detected_s, 3),
            "errno": self.errno_name, "probes_seen": self.probes_seen,
            "first_probe_s": None if self.first_probe_s is None else round(self.first_probe_s, 3),
            "timer_kinds": self.timer_kinds,
            "counters": {k: self.counters.get(k, 0) for k in
                         ("TcpExt.TCPKeepAlive", "TcpExt.TCPAbortOnTimeout", "Tcp.OutRsts")},
            "client_after": self.after, "server_after": self.peer_after,
        }


def total(setting: tuple[int, int, int]) -> int:
    """idle + interval x probes: when keepalive gives up on a silent peer."""
    return setting[0] + setting[1] * setting[2]


def set_keepalive(sock: socket.socket, idle: int | None, interval: int | None,
                  probes: int | None) -> None:
    """SO_KEEPALIVE on; per-socket TCP_KEEPIDLE/KEEPINTVL/KEEPCNT where given (else sysctls)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in ((socket.TCP_KEEPIDLE, idle), (socket.TCP_KEEPINTVL, interval),
                          (socket.TCP_KEEPCNT, probes)):
        if value is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


async def quiet_exchange(lab: Lab, conn: Connection) -> float:
    """A request and a reply, both acknowledged; returns the lab time the reply arrived."""
    await conn.client.send(b"ping")
    if await conn.server.recv() != b"ping":
        raise ExpectationFailed("the server did not receive the request")
    await conn.server.send(b"pong")
    if await conn.client.recv() != b"pong":
        raise ExpectationFailed("the client did not receive the reply")
    last_activity = lab.clock()
    def all_acked() -> bool:
        record = conn.server.observe()
        return record is not None and record.send_q == 0

    await eventually(all_acked, timeout=2, what="the server's reply acknowledged (Send-Q 0)")
    return last_activity


async def detect_dead_peer(lab: Lab, conn: Connection, expected_s: float) -> Detection:
    """Kill the peer silently after a last exchange and time the client's keepalive verdict."""
    client, server = conn.client, conn.server
    last_activity = await quiet_exchange(lab, conn)
    before = netstat_counters()
    deafen(server.sock)
    found = Detection(expected_s)

    async def watch(cancel: trio.CancelScope) -> None:
        with cancel:
            while True:
                record = client.observe()
                if record is not None and not record.fd_only:
                    kind = record.timer.kind.value
                    if not found.timer_kinds or found.timer_kinds[-1] != kind:
                        found.timer_kinds.append(kind)
                    if record.timer.kind is TimerKind.KEEPALIVE and record.timer.fired:
                        if found.first_probe_s is None:
                            found.first_probe_s = lab.clock() - last_activity
                        found.probes_seen = max(found.probes_seen, record.timer.fired)
                await trio.sleep(POLL_S)

    async with trio.open_nursery() as nursery:
        cancel = trio.CancelScope()
        nursery.start_soon(watch, cancel)
        # A deadline, measured rather than raised: a keepalive that never gives up is a
        # result the verdicts must be able to state (errno stays 0, detected_s the wait).
        with trio.move_on_after(capped(expected_s + 5)):  # tcplab try's --max-wait
            found.errno = await client.recv_error()
        found.detected_s = lab.clock() - last_activity
        cancel.cancel()
    found.counters = counter_delta(before, netstat_counters())
    after = client.observe()
    peer = server.observe()
    found.after = "gone" if after is None else after.state.value + (" (fd only)" if after.fd_only
                                                                    else "")
    found.peer_after = "gone" if peer is None else peer.state.value
    return found


def error_of(found: Detection) -> tuple[float | None, str | None]:
    """When and with which errno the kernel failed recv(); (None, None) if it never did."""
    return (found.detected_s, found.errno_name) if found.errno else (None, None)


def pending_error(end: End) -> str | None:
    """The error the kernel left on ``end``'s socket (SO_ERROR, read once), None if none."""
    number = end.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return errno_name(number) if number else None


async def measure_rule(lab: Lab, verdicts: Verdicts, setting: tuple[int, int, int], *,
                       per_socket: bool) -> KeepaliveRule:
    """The keepalive rule against a silent peer, as C34 and C35 measure it.

    First a connection without SO_KEEPALIVE whose peer falls silent (so it is silent at least
    as long), then one with SO_KEEPALIVE timed by ``detect_dead_peer``: with ``setting``
    (idle, interval, probes) as per-socket values, or (``per_socket=False``) SO_KEEPALIVE
    alone, so the namespace's sysctls, which the scenario set to ``setting``, rule. Then
    this kernel's defaults from a fresh namespace. The detection's details go in a note."""
    bare, conn = await lab.connect(), await lab.connect()
    set_keepalive(conn.client.sock, *(setting if per_socket else (None, None, None)))
    await silent_after_exchange(lab, bare)
    idle, interval, probes = setting
    found = await detect_dead_peer(lab, conn, total(setting))
    bare_rec = bare.client.observe()
    verdicts.note("detection", found.to_json())
    fresh = await fresh_netns_ints(*NAMES)
    detected_s, errno = error_of(found)
    return KeepaliveRule(
        idle_s=idle, interval_s=interval, probes=probes, detected_s=detected_s, errno=errno,
        probes_seen=found.probes_seen, default_time_s=fresh[NAMES[0]],
        default_interval_s=fresh[NAMES[1]], default_probes=fresh[NAMES[2]],
        bare_timer=timer_of(bare_rec)[0], bare_after=state_of(bare_rec))


def silence(end: End) -> None:
    """``end`` falls silent: every segment to it is dropped from now on (``packets.deafen``)."""
    deafen(end.sock)


async def silent_after_exchange(lab: Lab, conn: Connection) -> None:
    """A last exchange, then the server falls silent: a dead peer for a client that has no
    keepalive, to set beside one that has."""
    await quiet_exchange(lab, conn)
    silence(conn.server)


async def leak_close_wait(conn: Connection, *, close: bool = False,
                          peer_closes: bool = False) -> float:
    """The client half-closes and its FIN is acknowledged (FIN_WAIT2, fd open, so it still
    answers keepalive probes), or with ``peer_closes`` close()s as an ordinary client does
    (an orphan: its FIN_WAIT2 ends after TCP_LINGER2 / tcp_fin_timeout, then nothing answers
    for it). The server reads end-of-file and never closes (``close``: closes at once, as a
    correct application does). Returns the lab time the FIN was sent."""
    fin_at = conn.client.lab.clock()
    if peer_closes:
        await conn.client.close()
    else:
        await conn.client.send_eof()
        await reaches(conn.client, S.FIN_WAIT2)
    if await conn.server.read_eof() != b"":
        raise ExpectationFailed("the server read data before end-of-file")
    if close:
        await conn.server.close()
    else:
        conn.server.leak()
    return fin_at


async def pile_up(lab: Lab, count: int) -> tuple[list[Connection], list[Connection]]:
    """``count`` peers half-close against a server that never closes, and ``count`` against
    one that closes on end-of-file; returns both lists, to count CLOSE_WAIT in later."""
    leaking = [await lab.connect() for _ in range(count)]
    closing = [await lab.connect() for _ in range(count)]
    for conn in leaking + closing:
        await leak_close_wait(conn, close=conn in closing)
    return leaking, closing


def in_state(conns: list[Connection], state: TcpState) -> int:
    """How many of ``conns`` have their server end in ``state`` now."""
    records = [c.server.observe() for c in conns]
    return sum(1 for r in records if r is not None and r.state is state)


def dropped(record: SocketRecord | None) -> bool:
    """The kernel let go of the socket: gone, or CLOSED while our fd stays open."""
    return record is None or record.fd_only


async def watch_drops(lab: Lab, ends: dict[str, tuple[End, float]],
                      until: float) -> dict[str, float | None]:
    """Poll each end (with the lab time it started from) until lab time ``until``; return,
    per name, the seconds from its start to the kernel dropping it (None: it never did)."""
    seen: dict[str, float | None] = {name: None for name in ends}
    while lab.clock() < until:
        for name, (end, start) in ends.items():
            if seen[name] is None and dropped(end.observe()):
                seen[name] = lab.clock() - start
        await trio.sleep(POLL_S)
    return seen


def timer_of(record: SocketRecord | None) -> tuple[str | None, float | None]:
    """A record's timer as the judges take it: kind name and seconds left."""
    return (None, None) if record is None else (record.timer.kind.value, record.timer.remaining)

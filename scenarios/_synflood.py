"""A small SYN flood against a listener that never accepts, and clients that connect during it.

Shared by the synflood scenarios (one per tcp_syncookies setting, each in a network namespace
of its own: the setting and the counters are per namespace). The flood comes from the lab's
address (127.0.0.1): ``count`` non-blocking connect() calls in a row, whose final ACKs the
listener's socket filter drops (``packets.accept_only_syns_from``), so their request sockets
are held in SYN_RECV on purpose, as behind a spoofed SYN flood, while those clients think they
are ESTABLISHED. Then ``legit`` clients connect from another loopback address (127.0.0.2),
whose segments all pass: do they complete while the flood's requests fill the SYN queue?

After each phase the kernel's tables are polled until the counts stop moving, well before the
first SYN-ACK or SYN retransmission (1 s), and read once more; then every socket is closed, so
a later flood sees nothing of this one.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tcplab import Lab, TcpState
from tcplab.expect import within
from tcplab.judges.tuning import SynBacklog, SynCookies
from tcplab.kernel.kmsg import KernelLog
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.packets import accept_only_syns_from
from tcplab.kernel.procfs import counter_delta, netstat_counters

S = TcpState
LEGIT_FROM = "127.0.0.2"
SETTLE_S = 0.05  # counts unchanged this long: the phase is over
SETTLE_DEADLINE_S = 0.4  # per phase; both phases end before the first retransmission at 1 s
SYNCOOKIES, MAX_SYN_BACKLOG = "net.ipv4.tcp_syncookies", "net.ipv4.tcp_max_syn_backlog"
COUNTERS = ("TcpExt.SyncookiesSent", "TcpExt.SyncookiesRecv", "TcpExt.SyncookiesFailed",
            "TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.TCPReqQFullDrop",
            "TcpExt.TCPReqQFullDoCookies")


@dataclass
class Flood:
    """What one flood left in the kernel (the run's evidence, kept as a note)."""

    attempts: int
    backlog: int
    legit_tried: int
    syn_recv: int = 0  # request sockets on the listener
    answered: int = 0  # flood clients that got a SYN-ACK (ESTABLISHED on their side)
    legit_completed: int = 0  # the listener's accept queue: completed handshakes
    flood_counters: dict[str, int] = field(default_factory=dict)
    legit_counters: dict[str, int] = field(default_factory=dict)
    connect_errors: dict[str, int] = field(default_factory=dict)

    def cookies_sent(self) -> int:
        return self.flood_counters.get("TcpExt.SyncookiesSent", 0)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self),
                "flood_counters": {k: self.flood_counters.get(k, 0) for k in COUNTERS},
                "legit_counters": {k: self.legit_counters.get(k, 0) for k in COUNTERS}}


def _census(observer: DiagObserver, port: int) -> tuple[int, int, int]:
    """(SYN_RECV requests, flood clients ESTABLISHED, accept queue) on ``port``."""
    syn_recv = answered = accept_queue = 0
    for record in observer.snapshot(port=port):
        if record.family != socket.AF_INET:
            continue
        if record.four_tuple.local.port == port:
            syn_recv += record.state is S.SYN_RECV
            accept_queue = record.recv_q if record.state is S.LISTEN else accept_queue
        elif record.four_tuple.local.host != LEGIT_FROM:
            answered += record.state is S.ESTABLISHED
    return syn_recv, answered, accept_queue


async def _settled(observer: DiagObserver, port: int) -> tuple[int, int, int]:
    """The census once it has stayed the same for SETTLE_S; a flood still moving after
    SETTLE_DEADLINE_S is read as it stands then."""
    last, since = _census(observer, port), time.monotonic()

    def steady() -> bool:
        nonlocal last, since
        now = _census(observer, port)
        if now != last:
            last, since = now, time.monotonic()
        return time.monotonic() - since >= SETTLE_S

    await within(steady, timeout=SETTLE_DEADLINE_S)
    return last


def _connect(sock: socket.socket, where: tuple[str, int], errors: dict[str, int]) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(where)
    if code not in (0, errno.EINPROGRESS):
        name = errno.errorcode.get(code, str(code))
        errors[name] = errors.get(name, 0) + 1


async def flood(lab: Lab, *, count: int, backlog: int, legit: int = 0) -> Flood:
    """``count`` half-open connections at a fresh ``listen(backlog)``, then ``legit`` clients."""
    listener = await lab.listen(backlog=backlog)
    accept_only_syns_from(listener.sock, listener.address.host)
    where = (listener.address.host, listener.address.port)
    result = Flood(count, backlog, legit)
    sockets: list[socket.socket] = []
    try:
        with DiagObserver() as observer:
            before = netstat_counters()
            for _ in range(count):
                sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                _connect(sockets[-1], where, result.connect_errors)
            result.syn_recv, result.answered, _ = await _settled(observer, where[1])
            middle = netstat_counters()
            for _ in range(legit):
                sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sockets[-1].bind((LEGIT_FROM, 0))
                _connect(sockets[-1], where, result.connect_errors)
            _, _, result.legit_completed = await _settled(observer, where[1])
            result.flood_counters = counter_delta(before, middle)
            result.legit_counters = counter_delta(middle, netstat_counters())
    finally:
        for sock in sockets:
            sock.close()
        await listener.close()
    return result


def cookies_of(wide: Flood, setting: int, defaults: dict[str, int]) -> SynCookies:
    """C32's measurement from a flood that had legitimate clients."""
    return SynCookies(setting, wide.attempts, wide.backlog, wide.syn_recv, wide.cookies_sent(),
                      wide.answered, wide.legit_tried, wide.legit_completed,
                      defaults.get(SYNCOOKIES))


def backlog_of(wide: Flood, narrow: Flood, setting: int, max_syn_backlog: int,
               defaults: dict[str, int]) -> SynBacklog:
    """C33's measurement from floods at a listen backlog above and below the sysctl."""
    return SynBacklog(setting, max_syn_backlog, wide.backlog, wide.syn_recv, narrow.backlog,
                      narrow.syn_recv, defaults.get(MAX_SYN_BACKLOG), defaults.get(SYNCOOKIES))


async def synflood_notice(lab: Lab, log: KernelLog, *, timeout: float = 2.0) -> str | None:
    """Make the kernel log its SYN-flood notice and return the line ``log`` read (None: the
    reader did not see it within ``timeout``).

    The notice is a kernel TCP message (tcp_syn_flood_action, net/ipv4/tcp_input.c) printed
    once per listener at info level through net_ratelimit, the way the old time-wait overflow
    warning was: a reader that sees it would have seen that warning. A fresh listen(1) whose
    final ACKs are dropped overflows its SYN queue at the second SYN."""
    listener = await lab.listen(backlog=1)
    accept_only_syns_from(listener.sock, listener.address.host)
    marker = f"SYN flooding on port {listener.address.host}:{listener.address.port}."
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(4)]
    lines: list[str] = []

    def notice() -> list[str]:
        lines.extend(log.since())
        return [line for line in lines if marker in line]

    try:
        for sock in sockets:
            _connect(sock, (listener.address.host, listener.address.port), {})
        seen = await within(notice, timeout=timeout)
    finally:
        for sock in sockets:
            sock.close()
        await listener.close()
    return seen[0] if seen else None

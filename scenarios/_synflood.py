"""A bounded burst of connection attempts against a listener that never accepts.

Shared by the synflood scenarios (one per tcp_syncookies setting, each in its own network
namespace, since the setting and the counters are per namespace). Two kinds of burst:

* ``half_open=True``: the listener drops every segment but SYNs (``_filters.syn_only``), so
  the final ACK of each handshake is lost and request sockets pile up in SYN_RECV: the SYN
  queue fills as under a spoofed SYN flood, while the clients, whose ACKs were sent, think
  they are ESTABLISHED.
* ``half_open=False``: handshakes complete and the accept queue fills: on loopback that is
  the limit a real burst of clients meets first.

The burst is ``count`` non-blocking connect() calls in a row (loopback runs each handshake
almost synchronously); then the kernel's tables are polled until the counts stop moving,
well before the first retransmission (1 s), and read once more. Then every client socket
and the listener are closed, so a later burst's counters see no retransmission of this one.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import Any

import trio

from _filters import accept_only_syns
from tcplab import Lab, TcpState
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.procfs import counter_delta, netstat_counters

S = TcpState
COUNTERS = (
    "TcpExt.SyncookiesSent", "TcpExt.SyncookiesRecv", "TcpExt.SyncookiesFailed",
    "TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.TCPReqQFullDrop",
    "TcpExt.TCPReqQFullDoCookies", "Tcp.ActiveOpens", "Tcp.PassiveOpens",
)
SETTLE_S = 0.05  # counts unchanged this long: the burst is over
SETTLE_DEADLINE_S = 0.7  # before the first SYN / SYN-ACK retransmission at 1 s


@dataclass
class Flood:
    """What one burst left in the kernel."""

    attempts: int
    backlog: int
    half_open: bool
    client_states: dict[str, int] = field(default_factory=dict)  # clients' sockets by state
    syn_recv: int = 0  # request sockets on the listener
    accept_queue: int = 0  # the listener's Recv-Q: completed, not accepted
    counters: dict[str, int] = field(default_factory=dict)  # increases during the burst
    connect_errors: dict[str, int] = field(default_factory=dict)
    settled_after_s: float = 0.0

    def clients(self, state: TcpState) -> int:
        return self.client_states.get(state.value, 0)

    def counter(self, name: str) -> int:
        return self.counters.get(f"TcpExt.{name}", self.counters.get(name, 0))

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts, "listen_backlog": self.backlog, "half_open": self.half_open,
            "client_states": self.client_states, "syn_recv": self.syn_recv,
            "accept_queue": self.accept_queue,
            "counters": {k: self.counters.get(k, 0) for k in COUNTERS},
            "connect_errors": self.connect_errors,
            "settled_after_s": round(self.settled_after_s, 3),
        }


def _census(diag: SockDiag, port: int) -> tuple[dict[str, int], int, int]:
    clients: dict[str, int] = {}
    syn_recv = accept_queue = 0
    for record in diag.dump(port=port, families=(socket.AF_INET,)):
        if record.four_tuple.local.port == port:
            if record.state is S.SYN_RECV:
                syn_recv += 1
            elif record.state is S.LISTEN:
                accept_queue = record.recv_q
        else:
            clients[record.state.value] = clients.get(record.state.value, 0) + 1
    return clients, syn_recv, accept_queue


async def burst(lab: Lab, *, count: int, backlog: int, half_open: bool) -> Flood:
    """``count`` connection attempts at a fresh listener (``listen(backlog)``), never accepted."""
    listener = await lab.listen(backlog=backlog)
    if half_open:
        accept_only_syns(listener.sock)
    port = listener.address.port
    flood = Flood(count, backlog, half_open)
    before = netstat_counters()
    started = trio.current_time()
    clients: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            clients.append(sock)
            sock.setblocking(False)
            code = sock.connect_ex((listener.address.host, port))
            if code not in (0, errno.EINPROGRESS):
                name = errno.errorcode.get(code, str(code))
                flood.connect_errors[name] = flood.connect_errors.get(name, 0) + 1
        with SockDiag() as diag:
            last = _census(diag, port)
            stable_since = trio.current_time()
            while trio.current_time() - started < SETTLE_DEADLINE_S:
                await trio.sleep(0.01)
                now = _census(diag, port)
                if now != last:
                    last, stable_since = now, trio.current_time()
                elif trio.current_time() - stable_since >= SETTLE_S:
                    break
            flood.settled_after_s = trio.current_time() - started
            flood.client_states, flood.syn_recv, flood.accept_queue = _census(diag, port)
        flood.counters = counter_delta(before, netstat_counters())
    finally:
        for sock in clients:
            sock.close()
        await listener.close()
    return flood

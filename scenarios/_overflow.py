"""Handshakes that complete into a full accept queue: the probe behind ``abort-on-overflow``
(claim K05).

Each probe runs in a namespace of its own (``tcplab.isolated``) with one
tcp_abort_on_overflow setting. The listener has ``listen(1)`` (room for two: the kernel
calls the queue full only when it holds more than the backlog) and one connection already
waits there, never accepted. Two handshakes are started while the listener's filter drops
everything but SYNs (``packets.accept_only_syns``): their clients are ESTABLISHED, the server
holds two request sockets. With the filter removed, the first client's data completes its
handshake and fills the queue (held full on purpose: nobody accepts); the second client's
data then meets the full queue, as after a burst. A third client connects meanwhile: its SYN
meets the full queue too. After ``HOLD`` seconds the application accepts what waits, and the
probe watches whether the second and third connections complete.

The kernel decides in ``tcp_check_req`` (net/ipv4/tcp_minisocks.c, label listen_overflow):
without the sysctl the ACK is dropped and the request kept (``acked = 1``); with it the
request is reset (``embryonic_reset``). A SYN that finds the queue full is dropped before any
request exists, whatever the setting (``tcp_conn_request``, net/ipv4/tcp_input.c).
"""

from __future__ import annotations

import socket
from typing import Any

import trio

from _synrecv import _handshake
from tcplab import End, Lab, Listener, TcpState
from tcplab.expect import eventually, within
from tcplab.kernel import sysctl
from tcplab.kernel.packets import accept_only_syns, detach
from tcplab.kernel.procfs import counter_delta, netstat_counters

S = TcpState
PROBE = __file__
ABORT = "net.ipv4.tcp_abort_on_overflow"
HOLD = 1.5  # seconds the queue stays full: past the third client's first SYN retransmission
RECOVER = 8.0  # seconds allowed, once there is room, for the held connections to complete
COUNTERS = ("TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.EmbryonicRsts",
            "Tcp.OutRsts")


async def _left(end: End, state: TcpState, seconds: float) -> float | None:
    """Seconds until ``end`` left ``state`` (None: it stayed ``seconds``)."""
    started = trio.current_time()

    def left() -> bool:
        record = end.observe_all()
        return record is None or record.state is not state

    return trio.current_time() - started if await within(left, timeout=seconds) else None


def _state(end: End) -> str | None:
    record = end.observe()
    return None if record is None else record.state.value


async def _accepted(listener: Listener, port: int, seconds: float) -> tuple[socket.socket | None, float]:
    """Accept until the connection from client ``port`` comes (or ``seconds`` pass)."""
    started = trio.current_time()
    with trio.move_on_after(seconds):
        while True:
            sock = await listener.accept()
            if sock.getpeername()[1] == port:
                return sock, trio.current_time() - started
    return None, trio.current_time() - started


async def _read(sock: socket.socket | None, seconds: float) -> bytes:
    """The first bytes ``sock`` receives within ``seconds`` (the data may arrive after the
    handshake completed, by retransmission): b"" if none."""
    if sock is not None:
        with trio.move_on_after(seconds):
            return bytes(await trio.socket.from_stdlib_socket(sock).recv(100))
    return b""


async def overflow(lab: Lab) -> dict[str, Any]:
    """Probe: see the module docstring."""
    listener = await lab.listen(backlog=1)
    await lab.open_client(listener)  # waits in the queue, never accepted
    accept_only_syns(listener.sock)
    first, second = [await _handshake(lab, listener) for _ in range(2)]
    detach(listener.sock)
    before = netstat_counters()
    await first.peers[0].send(b"first")

    def full() -> bool:
        record = listener.observe()
        return record is not None and record.recv_q == 2

    await eventually(full, timeout=5.0, what="the accept queue full (two waiting)")
    client = second.peers[0]
    await client.send(b"second")  # its ACK and data meet the full queue
    late = await lab.start_connect(listener, label="late")  # a SYN meets the full queue
    reset_after = await _left(client, S.ESTABLISHED, HOLD)
    held = {"client": _state(client), "request": _state(second), "late": _state(late)}
    counters = counter_delta(before, netstat_counters())
    for _ in range(2):  # the application catches up: room again
        await listener.accept()
    port = client.four_tuple.local.port
    sock, took = (None, 0.0) if reset_after is not None else await _accepted(listener, port, RECOVER)
    data = await _read(sock, RECOVER)
    late_after = await _left(late, S.SYN_SENT, RECOVER)
    return {"setting": sysctl.read_int(ABORT), "hold_s": HOLD, "reset_after_s": reset_after,
            **held, "recovered_after_s": took if sock is not None else None,
            "data": data.decode(errors="replace"), "late_after_s": late_after,
            "late_then": _state(late), "counters": {k: counters.get(k, 0) for k in COUNTERS}}

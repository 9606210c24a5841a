"""Plain request/response over loopback, many times and fast: blocking sockets, no trio.

The TIME_WAIT scenarios need thousands of complete connections in a few seconds, so these
helpers use blocking stdlib sockets in one thread (loopback buffers make the client and
server steps safe to interleave) and return to the event loop between batches. Every socket
they open is closed before they return; only the kernel's TIME_WAIT sockets remain, by
design, in the scenario's private namespace.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from tcplab import End, Lab, TcpState
from tcplab.expect import reaches
from tcplab.kernel.observer import DiagObserver

REQUEST = b"GET-ITEM 42\n"
RESPONSE = b"ITEM 42 " + b"x" * 200 + b"\n"


def open_listener(backlog: int = 512) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock


def _pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def exchange(client: socket.socket, server: socket.socket) -> None:
    """One request and its response."""
    client.sendall(REQUEST)
    if server.recv(4096) != REQUEST:
        raise RuntimeError("request torn on loopback")
    server.sendall(RESPONSE)
    got = b""
    while len(got) < len(RESPONSE):
        got += client.recv(4096)


def server_closes_first(listener: socket.socket) -> None:
    """Connect, accept, the server closes first (its TIME_WAIT), the client closes after EOF."""
    client, server = _pair(listener)
    server.close()  # on loopback its FIN is in before close() returns: the client is in
    client.close()  # CLOSE_WAIT, so this is the passive close (LAST_ACK), never a crossing


def client_closes_first(listener: socket.socket, requests: int = 1) -> None:
    """Connect, ``requests`` request/response exchanges, the client closes first (its
    TIME_WAIT), the server closes after reading end of file."""
    client, server = _pair(listener)
    try:
        for _ in range(requests):
            exchange(client, server)
    finally:
        client.close()
        server.recv(1)
        server.close()


async def repeat(action: Callable[[], None], times: int, batch: int = 250) -> float:
    """Run ``action`` ``times`` times; return the process CPU seconds it took. Yields to the
    event loop between batches."""
    cpu = 0.0
    done = 0
    while done < times:
        n = min(batch, times - done)
        start = time.process_time()
        for _ in range(n):
            action()
        cpu += time.process_time() - start
        done += n
        await trio.lowlevel.checkpoint()
    return cpu


@dataclass
class Timing:
    """One round: the median per-connection wall and CPU microseconds.

    Each connection is timed on its own and the round keeps the median, so a neighbour
    preempting us for a few milliseconds spoils a few connections, not the round."""

    wall_us: float
    cpu_us: float


def timed(action: Callable[[], None], times: int) -> Timing:
    """Run ``action`` ``times`` times in a row (no yielding), timing each run."""
    walls, cpus = [], []
    for _ in range(times):
        wall, cpu = time.perf_counter_ns(), time.process_time_ns()
        action()
        walls.append(time.perf_counter_ns() - wall)
        cpus.append(time.process_time_ns() - cpu)
    return Timing(statistics.median(walls) / 1e3, statistics.median(cpus) / 1e3)


def median(values: list[float]) -> float:
    return statistics.median(values)


def count_time_wait(port: int | None = None, *, local_ports: frozenset[int] | None = None) -> int:
    """TIME_WAIT sockets with ``port`` at either end (any if None), or whose local port is
    one of ``local_ports``."""
    with DiagObserver() as observer:
        records = [r for r in observer.snapshot(states=[TcpState.TIME_WAIT], port=port)
                   if r.family == socket.AF_INET]
    if local_ports is None:
        return len(records)
    return sum(1 for r in records if r.four_tuple.local.port in local_ports)


async def drawn_example(lab: Lab, *, requests: int, closer: str) -> None:
    """One connection of the kind a scenario measures in bulk, made through the lab so that
    its report can draw it: ``requests`` request/response exchanges, then ``closer``
    ("client" or "server") closes first and ends in TIME_WAIT. The bulk itself runs on plain
    sockets: thousands of connections are too many to trace one by one."""
    conn = await lab.connect()
    for _ in range(requests):
        await conn.client.send(REQUEST)
        await _receive(conn.server, len(REQUEST))
        await conn.server.send(RESPONSE)
        await _receive(conn.client, len(RESPONSE))
    first, second = (conn.client, conn.server) if closer == "client" else (conn.server, conn.client)
    await first.close()
    await second.read_eof()
    await second.close()
    await reaches(first, TcpState.TIME_WAIT)


async def _receive(end: End, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await end.recv(size - len(data))
        if not chunk:
            raise EOFError(f"{end.label}: end of file after {len(data)} of {size} bytes")
        data += chunk
    return data

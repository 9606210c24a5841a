"""The probes behind ``timewait-cost`` (claim C15): per-connection cost next to N TIME_WAITs.

Each probe runs in a namespace of its own (``tcplab.isolated``) created from the scenario's,
whose ``tcp_child_ehash_entries`` gives it a connection hash table of its own: the
TIME_WAITs that other namespaces of this host hold (tens of thousands on a busy machine,
visible in the tw_sock_TCP slab) do not share its buckets, so a baseline can really be zero.
Whether it was is counted before and after its rounds and handed to the judge.

``cost`` (server side): TIME_WAITs are gathered on the server side of "filler" listeners
(the server closes first); the timed connections go to another listener.

``client_cost`` (client side): TIME_WAITs are gathered on the client side (the client closes
first) of connections to the very listener the timed connections go to, so they hold local
ports of the namespace's ephemeral range towards that destination. A new connect() then has
to search past them (net/ipv4/inet_hashtables.c ``__inet_hash_connect``: every port of the
range held for this destination costs a ``__inet_check_established`` lookup). The listener
sits on 192.0.2.1 (RFC 5737 TEST-NET-1, put on this namespace's ``lo``): outside 127/8, so
the default tcp_tw_reuse=2 leaves the TIME_WAITs alone, as it would towards a remote server.

Timed connections do one request/response and are reset by the client (SO_LINGER 0), so
they add no TIME_WAIT of their own. Each level runs ``ROUNDS`` rounds of ``PER_ROUND``
connections, each timed alone; a round keeps its median connection, a level the median of
its rounds (wall and process CPU time), plus the median of ``CONNECTS`` connect() calls.
"""

from __future__ import annotations

import socket
import statistics
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from _shortconn import (
    client_closes_first,
    count_time_wait,
    exchange,
    repeat,
    server_closes_first,
    timed,
)
from tcplab import Lab
from tcplab.judges.timewait import CostLevel, CostSeries
from tcplab.kernel import sysctl

PROBE = __file__  # run_isolated loads the probe from this file
ROUNDS, PER_ROUND, CONNECTS = 12, 100, 200
SERVER_LEVELS = (0, 3000, 20000)
CLIENT_FILL = 3000
FILLER_PORTS = 8  # server TIME_WAITs spread over ports, so a new four-tuple rarely meets one
WARM_UP = 300
NETWORK = "192.0.2.1"
RANGE = "net.ipv4.ip_local_port_range"
SERVER_SYSCTLS: dict[str, str | int] = {RANGE: "10000 65000", "net.ipv4.tcp_max_tw_buckets": 100000}
#: client-side series: the fresh namespace's default range, and one that 3000 fill to 94%
CLIENT_SYSCTLS: dict[str, dict[str, str | int]] = {
    "client, default range": {}, "client, narrowed range": {RANGE: "40000 43199"}}


def listener_on(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(512)
    return sock


def _reset(client: socket.socket, server: socket.socket) -> None:
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    server.close()


def reset_by_client(listener: socket.socket) -> None:
    """Connect, accept, one request/response, the client resets: no TIME_WAIT anywhere."""
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        exchange(client, server)
    finally:
        _reset(client, server)


def connect_us(listener: socket.socket) -> float:
    """Median wall microseconds of connect() alone (each connection then reset)."""
    times = []
    for _ in range(CONNECTS):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        start = time.perf_counter_ns()
        client.connect(listener.getsockname())
        times.append(time.perf_counter_ns() - start)
        _reset(client, listener.accept()[0])
    return statistics.median(times) / 1e3


async def level(listener: socket.socket, count: Callable[[], int]) -> dict[str, Any]:
    """One level: the TIME_WAITs ``count`` sees before and after, and the medians."""
    before = count()
    rounds = []
    for _ in range(ROUNDS):
        rounds.append(timed(lambda: reset_by_client(listener), PER_ROUND))
        await trio.lowlevel.checkpoint()
    connect = connect_us(listener)
    return {"present": before, "present_after": count(), "connect_us": round(connect, 2),
            "wall_us": statistics.median(r.wall_us for r in rounds),
            "cpu_us": statistics.median(r.cpu_us for r in rounds),
            "rounds_cpu_us": [round(r.cpu_us, 1) for r in rounds]}


def tw_object_size() -> int | None:
    """Bytes per TIME_WAIT socket (the tw_sock_TCP slab's object size), if readable."""
    try:
        for line in Path("/proc/slabinfo").read_text().splitlines():
            fields = line.split()
            if fields and fields[0] == "tw_sock_TCP":
                return int(fields[3])
    except (OSError, ValueError, IndexError):
        return None
    return None


async def cost(lab: Lab) -> dict[str, Any]:
    """Probe: TIME_WAITs on the server side of filler listeners, level by level."""
    fillers = [listener_on("127.0.0.1") for _ in range(FILLER_PORTS)]
    measured = listener_on("127.0.0.1")
    filler_ports = frozenset(f.getsockname()[1] for f in fillers)
    turn = iter(range(10**9))
    levels = []
    try:
        await repeat(lambda: reset_by_client(measured), WARM_UP)
        for target in SERVER_LEVELS:
            for _ in range(3):  # a few passes; whatever is there then is the level's count
                have = count_time_wait(local_ports=filler_ports)
                if have >= target * 0.98:
                    break
                await repeat(lambda: server_closes_first(fillers[next(turn) % FILLER_PORTS]),
                             target - have + target // 50)
            levels.append(await level(measured, count_time_wait))
    finally:
        for sock in (*fillers, measured):
            sock.close()
    return {"where": f"server side of {FILLER_PORTS} filler listeners (timed connections to "
                     f"another listener, on 127.0.0.1)", "levels": levels,
            "tw_bytes": tw_object_size(),
            "ehash_entries": sysctl.read("net.ipv4.tcp_ehash_entries")}


async def client_cost(lab: Lab) -> dict[str, Any]:
    """Probe: 0, then CLIENT_FILL TIME_WAITs on the client side towards the timed listener."""
    await trio.run_process(["ip", "addr", "add", f"{NETWORK}/32", "dev", "lo"])
    listener = listener_on(NETWORK)
    low, high = (int(v) for v in (sysctl.read(RANGE) or "0 -1").split())
    levels = []
    try:
        await repeat(lambda: reset_by_client(listener), WARM_UP)
        levels.append(await level(listener, count_time_wait))
        await repeat(lambda: client_closes_first(listener), CLIENT_FILL)
        levels.append(await level(listener, count_time_wait))
    finally:
        listener.close()
    return {"where": f"client side (connect() to one listener on {NETWORK}, off loopback, "
                     f"tcp_tw_reuse={sysctl.read('net.ipv4.tcp_tw_reuse')}; ephemeral range "
                     f"{low}-{high}, {high - low + 1} ports)", "levels": levels}


def as_series(answer: dict[str, Any]) -> CostSeries:
    """A probe's answer as the judge's record."""
    return CostSeries(answer["where"], tuple(
        CostLevel(lv["present"], lv["wall_us"], lv["cpu_us"], lv["present_after"],
                  lv["connect_us"]) for lv in answer["levels"]))

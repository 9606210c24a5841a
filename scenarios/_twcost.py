"""The probe behind ``timewait-cost`` (claim C15): per-connection cost next to N TIME_WAITs.

It runs in a namespace of its own (``tcplab.isolated``) created from the scenario's, whose
``tcp_child_ehash_entries`` gives it a connection hash table of its own: the TIME_WAITs
that other namespaces of this host hold (tens of thousands on a busy machine, visible in the
tw_sock_TCP slab) do not share its buckets, so the baseline really is zero.

TIME_WAITs are gathered on the server side of "filler" listeners (the server closes
first). The measured connections go to another listener, do one request/response and are
reset by the client (SO_LINGER 0), so they add no TIME_WAIT of their own: the count stays
what the level says while it is measured. Each level runs ``ROUNDS`` rounds of
``PER_ROUND`` connections, each connection timed alone; a round keeps its median
connection, a level the median of its rounds (wall and process CPU time).
"""

from __future__ import annotations

import socket
import statistics
import struct
from pathlib import Path
from typing import Any

import trio

from _shortconn import count_time_wait, exchange, open_listener, repeat, server_closes_first, timed
from tcplab import Lab
from tcplab.expect import ExpectationFailed
from tcplab.kernel import sysctl

PROBE = __file__  # run_isolated loads the probe from this file
ROUNDS, PER_ROUND = 12, 100
LEVELS = (0, 3000, 20000)
FILLER_PORTS = 8  # TIME_WAITs spread over ports, so a new four-tuple rarely meets one
WARM_UP = 300
SYSCTLS: dict[str, str | int] = {"net.ipv4.ip_local_port_range": "10000 65000", "net.ipv4.tcp_max_tw_buckets": 100000}


def reset_by_client(listener: socket.socket) -> None:
    """Connect, accept, one request/response, the client resets: no TIME_WAIT anywhere."""
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    try:
        exchange(client, server)
    finally:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        server.close()


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
    """Probe: per level of TIME_WAITs, the median round's per-connection wall/CPU us."""
    fillers = [open_listener() for _ in range(FILLER_PORTS)]
    measured = open_listener()
    filler_ports = frozenset(f.getsockname()[1] for f in fillers)
    turn = iter(range(10**9))
    levels = []
    try:
        await repeat(lambda: reset_by_client(measured), WARM_UP)
        for target in LEVELS:
            while (have := count_time_wait(local_ports=filler_ports)) < target * 0.98:
                await repeat(lambda: server_closes_first(fillers[next(turn) % FILLER_PORTS]),
                             target - have + target // 50)
            before = count_time_wait()
            rounds = []
            for _ in range(ROUNDS):
                rounds.append(timed(lambda: reset_by_client(measured), PER_ROUND))
                await trio.lowlevel.checkpoint()
            after = count_time_wait()
            if target == 0 and before + after:
                raise ExpectationFailed(f"baseline not empty: {before}/{after} TIME_WAIT")
            levels.append({"present": before, "present_after": after,
                           "wall_us": statistics.median(r.wall_us for r in rounds),
                           "cpu_us": statistics.median(r.cpu_us for r in rounds),
                           "rounds_cpu_us": [round(r.cpu_us, 1) for r in rounds]})
    finally:
        for sock in (*fillers, measured):
            sock.close()
    return {"levels": levels, "tw_bytes": tw_object_size(),
            "ehash_entries": sysctl.read("net.ipv4.tcp_ehash_entries")}

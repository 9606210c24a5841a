"""One old duplicate against one TIME_WAIT: the probe behind ``old-duplicates`` (claim C13).

Each probe runs in a namespace of its own (``tcplab.isolated``) whose ephemeral range leaves
connect() a single usable port, so a plain connect() to the same listener can only ask for
the four-tuple the TIME_WAIT holds. The probe opens a connection, has the server send a
marked segment (captured on ``lo``: the future old duplicate), closes client first, and asks
for the same four-tuple again, by plain connect() or by bind()+SO_REUSEADDR to the port,
retrying for ``WINDOW`` seconds (tcp_tw_reuse's delay is 1 s by default). If a new
connection opens, the old segment is injected at it and the probe reads whether its bytes
entered the new stream; if not, the old segment is injected at the TIME_WAIT itself.

The kernel decides in ``__inet_check_established`` -> ``tcp_twsk_unique``
(net/ipv4/tcp_ipv4.c): an explicit bind() may take a TIME_WAIT over whenever that connection
used timestamps; a kernel-chosen port only with tcp_tw_reuse (2: loopback only) and after
tcp_tw_reuse_delay. A takeover starts the new sequence space at the old snd_nxt + 65537.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import trio

from tcplab import Connection, End, Lab, Listener, TcpState
from tcplab.expect import ExpectationFailed, eventually, reaches
from tcplab.judges.timewait import SameTupleTry
from tcplab.kernel import sysctl
from tcplab.kernel.packets import Segment, Tap, TcpFlags, inject
from tcplab.kernel.procfs import counter_delta, netstat_counters
from tcplab.ports import errno_name, usable

S = TcpState
RANGE = {"net.ipv4.ip_local_port_range": "40000 40001"}  # one port for connect(), one listener
WINDOW = 2.0
PROBE = __file__  # run_isolated loads the probe from this file
#: An RFC 5737 address put on ``lo``: tcp_tw_reuse=2 does not count it as loopback, so it
#: stands for traffic over a real network.
NETWORK = "192.0.2.1"
#: Counters that move when the kernel answers or discards a stray segment.
REACTIONS = ("Tcp.OutSegs", "Tcp.OutRsts", "TcpExt.TCPACKSkippedTimeWait",
             "TcpExt.TCPACKSkippedPAWS", "TcpExt.TCPACKSkippedSeq", "TcpExt.PAWSEstab",
             "TcpExt.TCPOFOQueue")


async def _open(lab: Lab, listener: Listener, port: int) -> Connection:
    """A client connected and accepted: bound to ``port`` (0: any) with SO_REUSEADDR, or
    (``port`` -1) a plain connect() that lets the kernel choose. The old connection is
    opened the same way as the new one: a port bound with SO_REUSEADDR is one that
    connect() never picks by itself (its bind bucket is marked reusable)."""
    sock = lab._socket()
    if port >= 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((lab.host, port))
    await trio.socket.from_stdlib_socket(sock).connect(
        (listener.address.host, listener.address.port))
    conn = Connection(End(lab, "client", sock), End(lab, "server", await listener.accept()))
    lab.connections.append(conn)
    return conn


async def _replay(segment: Segment) -> dict[str, int]:
    """Inject ``segment`` again; the counters that moved once the kernel reacted."""
    before = netstat_counters()
    inject(segment)

    def moved() -> dict[str, int]:
        delta = counter_delta(before, netstat_counters())
        return {k: v for k, v in delta.items() if k in REACTIONS and v}

    return await eventually(moved, what="the kernel's reaction to the replayed segment")


async def _captured(tap: Tap, what: str, match: Callable[[Segment], bool]) -> Segment:
    """The first segment ``tap`` saw that ``match``es (waits up to 5 s; a precondition)."""
    found = await tap.first(match, timeout=5.0)
    if found is None:
        raise ExpectationFailed(f"{what} was not captured ({len(tap.seen)} segments seen)")
    return found


async def _received(conn: Connection, marker: bytes) -> bytes:
    """Everything the client reads up to and including ``marker`` sent by the server."""
    await conn.server.send(marker)
    got = b""
    while marker not in got:
        got += await conn.client.recv()
    return got


async def same_tuple(lab: Lab, path: str, address: str | None) -> dict[str, Any]:
    """Probe: the old duplicate against a new connection on the TIME_WAIT's four-tuple
    (``path``: "connect" or "bind"), or against the TIME_WAIT if none opens."""
    if address is not None:
        await trio.run_process(["ip", "addr", "add", f"{address}/32", "dev", "lo"])
        lab.host = address
    listener = await lab.listen()
    if usable([listener]) != 1:
        raise ExpectationFailed(f"expected one usable ephemeral port, have {usable([listener])}")
    stale = b"OLD INCARNATION " + os.urandom(8).hex().encode()
    with Tap("lo") as tap:
        old = await _open(lab, listener, 0 if path == "bind" else -1)
        port = old.client.four_tuple.local.port
        await _received(old, stale)
        dup = await _captured(tap, "the marked segment", lambda s: s.data == stale)
        await old.client.close()
        await old.server.read_eof()
        await old.server.close()
        await reaches(old.client, S.TIME_WAIT)
        fin = await _captured(tap, "the client's FIN",
                              lambda s: TcpFlags.FIN in s.flags and s.src.port == port)
        entered, started = time.monotonic(), lab.clock()
        new: Connection | None = None
        first_errno: int | None = None
        while new is None and lab.clock() - started <= WINDOW:
            try:
                new = await _open(lab, listener, port if path == "bind" else -1)
            except OSError as exc:
                first_errno = exc.errno if first_errno is None else first_errno
                await trio.sleep(0.02)
        after = lab.clock() - started
        if new is None:  # TIME_WAIT held the four-tuple: the old segment meets it instead
            counters = await _replay(dup)
            return {"errno": errno_name(first_errno or 0), "counters": counters,
                    "time_wait_then": _state(old.client), **_settings(path, lab)}
        syn = await _captured(tap, "the new SYN",
                              lambda s: s.flags == TcpFlags.SYN and s.t >= entered)
        counters = await _replay(dup)
        got = await _received(new, b"NEW INCARNATION")
        return {"errno": None if first_errno is None else errno_name(first_errno),
                "taken_over_after_s": round(after, 3),
                "stale_taken": stale in got or bool(counters.get("TcpExt.TCPOFOQueue")),
                "isn_gap": (syn.seq - (fin.seq + 1)) % 2**32, "counters": counters,
                "same_port": new.client.four_tuple.local.port == port, **_settings(path, lab)}


def _state(end: End) -> str | None:
    record = end.observe()
    return None if record is None else record.state.value


def _settings(path: str, lab: Lab) -> dict[str, Any]:
    names = ("net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_timestamps", "net.ipv4.tcp_tw_reuse_delay")
    return {"path": path, "address": lab.host, **{n.split(".")[-1]: sysctl.read(n) for n in names}}


def as_try(name: str, r: dict[str, Any]) -> SameTupleTry:
    """A probe's answer as the judge's record."""
    return SameTupleTry(
        f"{name} (tcp_tw_reuse={r['tcp_tw_reuse']}, timestamps={r['tcp_timestamps']})",
        int(r["tcp_tw_reuse"]), r["tcp_timestamps"] == "1", r["errno"],
        r.get("taken_over_after_s"), r.get("stale_taken"), r.get("isn_gap"))

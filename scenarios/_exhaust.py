"""Probes behind ``port-exhaustion`` (claims C16, C31), each run in a namespace of its own.

``holders``: an eight-port ephemeral range is filled with connections to listener A (the
precondition: connect() then fails with EADDRNOTAVAIL), every connection is turned into one
kind of holder (client TIME_WAIT, client CLOSE_WAIT, or server TIME_WAIT: the accept side),
and the probe then asks for new connections to A again and again for ``WINDOW`` seconds,
and once to listener B (another destination). Both listeners sit on 127.0.0.1, or on
``NETWORK`` (RFC 5737 TEST-NET-1, put on this private namespace's ``lo``): an address
outside 127/8, which tcp_tw_reuse=2 does not count as loopback (``tcp_twsk_unique``), so
it stands for a real network.

``count``: connections to one listener until connect() refuses, in whatever range the
probe's namespace was given: the scaled-down stand-ins for the article's two ranges.
"""

from __future__ import annotations

import errno
from typing import Any

import trio

from tcplab import Connection, Lab, SocketRecord, TcpState
from tcplab.expect import ExpectationFailed, reaches
from tcplab.judges.timewait import HolderTry, RangeCount
from tcplab.kernel import sysctl
from tcplab.ports import (
    active_close,
    connect_until_refused,
    errno_name,
    passive_close_unanswered,
    try_connect,
    usable,
)

S = TcpState
PROBE = __file__  # run_isolated loads the probes from this file
WINDOW = 2.0  # seconds of retries: twice tcp_tw_reuse_delay's default
NARROW = {"net.ipv4.ip_local_port_range": "40000 40007"}
NETWORK = "192.0.2.1"


async def server_closes_first(conn: Connection) -> SocketRecord:
    """The server closes first, the client follows: the server keeps the TIME_WAIT and the
    client's port is free again (the accept side of the claim)."""
    await conn.server.close()
    await conn.client.read_eof()
    await conn.client.close()
    return await reaches(conn.server, {S.TIME_WAIT, S.CLOSED})


HOLD = {"client TIME_WAIT": (active_close, S.TIME_WAIT),
        "client CLOSE_WAIT": (passive_close_unanswered, S.CLOSE_WAIT),
        "server TIME_WAIT": (server_closes_first, S.TIME_WAIT)}


async def holders(lab: Lab, kind: str, address: str | None = None) -> dict[str, Any]:
    """Probe: fill the range, turn every connection into a ``kind`` holder, ask again
    (``address``: where both listeners sit; None: 127.0.0.1)."""
    if address is not None:
        await trio.run_process(["ip", "addr", "add", f"{address}/32", "dev", "lo"])
        lab.host = address
    a, b = await lab.listen(backlog=64), await lab.listen(backlog=64)
    ports = usable([a, b])
    held, err = await connect_until_refused(lab, a, ports)
    if len(held) != ports or err != errno.EADDRNOTAVAIL:
        raise ExpectationFailed(f"expected {ports} connections then EADDRNOTAVAIL, "
                                f"got {len(held)} then {errno_name(err)}")
    close, state = HOLD[kind]
    for conn in held:
        got = await close(conn)
        if got.state is not state:
            raise ExpectationFailed(f"expected {state.value} holders, got {got.describe()}")
    started, reopened, first, after = lab.clock(), 0, None, 0.0
    while reopened < ports and lab.clock() - started <= WINDOW:
        new, err = await try_connect(lab, a)
        reopened += new is not None
        first = err if first is None and err else first
        after = lab.clock() - started
        if new is None:
            await trio.sleep(0.02)
    _, other = await try_connect(lab, b)
    return {"kind": kind, "count": ports, "tw_reuse": sysctl.read("net.ipv4.tcp_tw_reuse"),
            "errno": None if first is None else errno_name(first), "reopened": reopened,
            "last_after_s": round(after, 3), "other_destination": errno_name(other), "address": lab.host}


async def count(lab: Lab) -> dict[str, Any]:
    """Probe: connections to one listener until connect() refuses; the usable ports."""
    listener = await lab.listen(backlog=4096)
    ports = usable([listener])
    held, err = await connect_until_refused(lab, listener, ports)
    return {"range": sysctl.read("net.ipv4.ip_local_port_range"), "usable": ports,
            "connections": len(held), "errno": errno_name(err)}


def range_count(r: dict[str, Any]) -> RangeCount:
    """A ``count`` answer as the judge's record."""
    low, high = (int(v) for v in r["range"].split())
    return RangeCount((low, high), r["usable"], r["connections"], r["errno"])


def as_try(r: dict[str, Any]) -> HolderTry:
    """A ``holders`` answer as the judge's record."""
    return HolderTry(r["kind"], int(r["tw_reuse"]), r["count"], r["errno"], r["reopened"],
                     r["last_after_s"] if r["reopened"] else None, r["other_destination"],
                     r["address"])

"""Local-port experiments: filling a narrowed ephemeral range and asking connect() for one more.

An outgoing connection needs a local port that makes its four-tuple unique. connect()
without bind() picks one from ``net.ipv4.ip_local_port_range``; a port is taken for a given
destination while any socket with that four-tuple exists (ESTABLISHED, CLOSE_WAIT, a
TIME_WAIT the kernel will not reuse). A port that a listener bind()s is skipped entirely
by connect(), so the listeners of a scenario count against a narrowed range: ``usable``
says how many ports connect() really has.

These helpers only drive a ``Lab``; the range and the reuse policy are the namespace's
sysctls, declared by the scenario (or the probe) that calls them.
"""

from __future__ import annotations

from tcplab.expect import reaches
from tcplab.kernel import sysctl
from tcplab.kernel.model import SocketRecord
from tcplab.lab import Connection, Lab, Listener
from tcplab.lab import errno_name as lab_errno_name
from tcplab.states import TcpState

S = TcpState


def port_range() -> tuple[int, int]:
    """``ip_local_port_range`` of the current namespace, both ends included."""
    value = sysctl.read("net.ipv4.ip_local_port_range")
    if value is None:  # pragma: no cover - every Linux has it
        raise RuntimeError("this kernel has no net.ipv4.ip_local_port_range")
    low, high = (int(v) for v in value.split())
    return low, high


def usable(listeners: list[Listener]) -> int:
    """Ports connect() can pick from: the range minus the ports our listeners bound in it."""
    low, high = port_range()
    taken = {li.address.port for li in listeners if low <= li.address.port <= high}
    return high - low + 1 - len(taken)


async def try_connect(lab: Lab, listener: Listener) -> tuple[Connection | None, int]:
    """Connect to ``listener`` and accept: (the connection, 0), or (None, connect's errno).

    EADDRNOTAVAIL is connect()'s answer when no local port gives a unique four-tuple; it
    comes at once, before any segment is sent.
    """
    try:
        return await lab.connect(listener), 0
    except OSError as exc:
        return None, exc.errno or 0


async def connect_until_refused(
    lab: Lab, listener: Listener, limit: int
) -> tuple[list[Connection], int]:
    """Open connections to ``listener`` until connect() fails (at most ``limit``, then one
    more try); return the connections opened and the errno of the failure (0: none failed)."""
    held: list[Connection] = []
    for _ in range(limit + 1):
        conn, err = await try_connect(lab, listener)
        if conn is None:
            return held, err
        held.append(conn)
    return held, 0


async def active_close(conn: Connection) -> SocketRecord:
    """The client closes first (shutdown, so its FIN_WAIT2 is not an orphan), the server
    answers with its FIN, and the client's kernel keeps a TIME_WAIT for the four-tuple —
    unless it refuses to (``tcp_max_tw_buckets``): then the client is CLOSED at once.
    Returns the client's record after the exchange (TIME_WAIT or CLOSED)."""
    await conn.client.send_eof()
    await reaches(conn.client, S.FIN_WAIT2)
    await conn.server.close()
    record = await reaches(conn.client, {S.TIME_WAIT, S.CLOSED})
    await conn.client.close()
    return record


async def passive_close_unanswered(conn: Connection) -> SocketRecord:
    """The server closes first and the client never does: the client is left in CLOSE_WAIT,
    still holding its local port (the CLOSE_WAIT leak, seen from the client)."""
    await conn.server.close()
    return await reaches(conn.client, S.CLOSE_WAIT)


def errno_name(number: int) -> str:
    """``99`` -> ``EADDRNOTAVAIL``; 0 -> ``ok``."""
    return "ok" if number == 0 else lab_errno_name(number)

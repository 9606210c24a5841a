"""A reset aimed at a TIME_WAIT: the probe behind ``rfc1337`` (claim K09).

Each probe runs in a namespace of its own (``tcplab.isolated``) with one tcp_rfc1337
setting. A connection closes client first, so the client holds TIME_WAIT; the server's FIN
is captured on ``lo`` and a reset is forged from it (``packets.reset_after``): same
four-tuple, the sequence number the TIME_WAIT expects next (the FIN's + 1), no options (so
no PAWS check), and injected. As a control, the same forging resets an ESTABLISHED
connection of the same namespace, which shows that the forged reset is one the kernel
accepts.

The kernel decides in ``tcp_timewait_state_process`` (net/ipv4/tcp_minisocks.c): an
in-window reset kills the TIME_WAIT (``inet_twsk_deschedule_put``) unless
``sysctl_tcp_rfc1337`` is set, in which case it is ignored.
"""

from __future__ import annotations

from typing import Any

import trio

from tcplab import Connection, End, Lab, TcpState
from tcplab.expect import ExpectationFailed, reaches, within
from tcplab.kernel import sysctl
from tcplab.kernel.packets import Segment, Tap, TcpFlags, inject, reset_after
from tcplab.kernel.procfs import counter_delta, netstat_counters

S = TcpState
PROBE = __file__  # run_isolated loads the probe from this file
RFC1337 = "net.ipv4.tcp_rfc1337"
HOLD = 1.0  # seconds a TIME_WAIT must outlive the reset to count as having ignored it


async def _from_server(tap: Tap, what: str, conn: Connection, flag: TcpFlags) -> Segment:
    """The first captured segment from ``conn``'s server to its client carrying ``flag``."""
    server, client = conn.server.four_tuple.local, conn.client.four_tuple.local
    found = await tap.first(lambda s: s.src == server and s.dst == client and flag in s.flags,
                            timeout=5.0)
    if found is None:
        raise ExpectationFailed(f"{what} was not captured ({len(tap.seen)} segments seen)")
    return found


async def _state_after(end: End, was: TcpState, seconds: float) -> tuple[str | None, float | None]:
    """Poll ``end`` (in ``was`` before the reset) for up to ``seconds``: (its state then,
    None: gone; seconds until it left ``was``, None: it stayed)."""
    started = trio.current_time()

    def left() -> bool:
        record = end.observe_all()
        return record is None or record.state is not was

    gone = await within(left, timeout=seconds)
    record = end.observe()
    return (None if record is None else record.state.value,
            trio.current_time() - started if gone else None)


async def assassinate(lab: Lab) -> dict[str, Any]:
    """Probe: a forged in-window reset against a TIME_WAIT, and against an ESTABLISHED."""
    listener = await lab.listen()
    with Tap("lo") as tap:
        conn = await lab.connect(listener)
        await conn.client.close()
        await conn.server.read_eof()
        await conn.server.close()
        await reaches(conn.client, S.TIME_WAIT)
        fin = await _from_server(tap, "the server's FIN", conn, TcpFlags.FIN)
        before = netstat_counters()
        rst = reset_after(fin)
        inject(rst)
        state, ended_after = await _state_after(conn.client, S.TIME_WAIT, HOLD)
        counters = counter_delta(before, netstat_counters())
        control = await lab.connect(listener)  # the same forging against an ESTABLISHED
        inject(reset_after(await _from_server(tap, "the control's SYN-ACK", control, TcpFlags.SYN)))
        control_state, control_after = await _state_after(control.client, S.ESTABLISHED, HOLD)
    return {"setting": sysctl.read_int(RFC1337),
            "reset": rst.describe(), "time_wait_then": state, "ended_after_s": ended_after,
            "control_state": control_state, "control_after_s": control_after,
            "counters": {k: v for k, v in counters.items() if v}}

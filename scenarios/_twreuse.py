"""The tw-reuse probe: every usable local port held by a TIME_WAIT, then connect() again.

Each setting runs in a namespace of its own (a child process, ``tcplab.isolated``) with a
four-port ``ip_local_port_range``: the client fills every usable port with connections to
one listener, closes them all first (so each port is held by a TIME_WAIT to that listener,
on purpose), then asks connect() for one more every 20 ms for ``WINDOW`` seconds. The result:
the errno of the first try, and when a try took over one of the TIME_WAIT ports.
"""

from __future__ import annotations

import errno
from typing import Any

import trio

from tcplab import Lab, TcpState
from tcplab.expect import ExpectationFailed
from tcplab.judges.tuning import TwReuse
from tcplab.ports import active_close, connect_until_refused, errno_name, try_connect, usable

S = TcpState
PROBE = __file__  # run_isolated's target: this module, whatever the working directory
REUSE, DELAY = "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_tw_reuse_delay"
STAMPS = "net.ipv4.tcp_timestamps"
RANGE = {"net.ipv4.ip_local_port_range": "40000 40003"}
WINDOW = 2.0  # seconds of retries: twice the default reuse delay
RETRY = 0.02
#: A documentation address (RFC 5737) put on ``lo``: loopback traffic whose addresses are
#: not 127/8, which tcp_tw_reuse=2 does not count as loopback.
OTHER = "192.0.2.1"

#: name -> (that namespace's sysctls on top of the narrow port range, address to use)
SETTINGS: dict[str, tuple[dict[str, str | int], str | None]] = {
    "reuse=0": ({REUSE: 0}, None),
    "reuse=1": ({REUSE: 1}, None),
    "reuse=2 on 127.0.0.1": ({REUSE: 2}, None),
    f"reuse=2 on {OTHER}": ({REUSE: 2}, OTHER),
    "reuse=1, timestamps=0": ({REUSE: 1, STAMPS: 0}, None),
    "reuse=1, delay=200 ms": ({REUSE: 1, DELAY: 200}, None),
}


async def probe_reuse(lab: Lab, address: str | None) -> dict[str, Any]:
    """Probe (own namespace): hold every usable port in TIME_WAIT, then retry connect().
    With ``address``, that address is added to ``lo`` and both ends use it."""
    if address is not None:
        await trio.run_process(["ip", "addr", "add", f"{address}/32", "dev", "lo"])
        lab.host = address  # listen there; the client's source address follows the route
    listener = await lab.listen(backlog=64)
    ports = usable([listener])
    held, err = await connect_until_refused(lab, listener, ports)
    if len(held) != ports or err != errno.EADDRNOTAVAIL:
        raise ExpectationFailed(f"expected {ports} connections then EADDRNOTAVAIL, "
                                f"got {len(held)} then {errno_name(err)}")
    first_tw = lab.clock()
    for conn in held:  # all closed within milliseconds: their TIME_WAITs start together
        record = await active_close(conn)
        if record.state is not S.TIME_WAIT:
            raise ExpectationFailed(f"expected TIME_WAIT, got {record.describe()}")
    tw_ports = {c.client.four_tuple.local.port for c in held}
    first: int | None = None
    while (since := lab.clock() - first_tw) <= WINDOW:
        extra, err = await try_connect(lab, listener)
        first = err if first is None else first
        if extra is not None and extra.client.four_tuple.local.port in tw_ports:
            return {"first_try": errno_name(first or 0), "after_s": round(since, 3)}
        await trio.sleep(RETRY)
    return {"first_try": errno_name(first or 0), "after_s": None}


def reuse_of(results: dict[str, dict[str, Any]], default: dict[str, int]) -> TwReuse:
    """C28's measurement from the probes' results and the fresh-namespace defaults."""
    def after(name: str) -> float | None:
        value = results[name]["after_s"]
        return None if value is None else float(value)

    return TwReuse(WINDOW, after("reuse=0"), after("reuse=1"), results["reuse=1"]["first_try"],
                   after("reuse=2 on 127.0.0.1"), after(f"reuse=2 on {OTHER}"),
                   after("reuse=1, timestamps=0"), after("reuse=1, delay=200 ms"),
                   default.get(REUSE), default.get(DELAY), default.get(STAMPS))

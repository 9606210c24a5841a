"""tcp_tw_reuse: when connect() may take over a TIME_WAIT four-tuple (claim C28; seeds 000, 002).

The articles say ``tcp_tw_reuse = 1`` lets new connections reuse TIME_WAIT sockets and that
it is off (0) by default. Each setting is tried in a namespace of its own (a child process
per setting, see ``tcplab.isolated``) with a four-port ``ip_local_port_range``: the client
fills every usable port with connections to one listener, closes them all first (so each
port is held by a TIME_WAIT to that listener), then asks connect() for one more, again and
again, for two seconds. The result per setting: the errno of the first try, and whether and
when a try succeeds by taking over a TIME_WAIT.

What the kernel needs for reuse (``tcp_twsk_unique``): reuse enabled (2 means loopback
traffic only), TCP timestamps on that connection, and ``tcp_tw_reuse_delay`` milliseconds
since the TIME_WAIT began. The default is read in this scenario's own fresh namespace.
"""

from __future__ import annotations

import errno
from typing import Any

import trio

from _shortconn import drawn_example
from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import ExpectationFailed
from tcplab.isolated import run_isolated
from tcplab.kernel import sysctl
from tcplab.ports import active_close, connect_until_refused, errno_name, try_connect, usable

S = TcpState
REUSE = "net.ipv4.tcp_tw_reuse"
DELAY = "net.ipv4.tcp_tw_reuse_delay"
STAMPS = "net.ipv4.tcp_timestamps"
RANGE = {"net.ipv4.ip_local_port_range": "40000 40003"}
WINDOW = 2.0  # seconds of retries: twice the default reuse delay
RETRY = 0.02

#: A documentation address (RFC 5737) put on ``lo``: traffic through the loopback device
#: whose addresses are not 127/8, which tcp_tw_reuse=2 does not count as loopback.
OTHER = "192.0.2.1"

#: name -> (the sysctls of that namespace on top of the narrow port range, address to use).
SETTINGS: dict[str, tuple[dict[str, str | int], str | None]] = {
    "reuse=0": ({REUSE: 0}, None),
    "reuse=1": ({REUSE: 1}, None),
    "reuse=2 on 127.0.0.1": ({REUSE: 2}, None),
    f"reuse=2 on {OTHER}": ({REUSE: 2}, OTHER),
    "reuse=1, timestamps=0": ({REUSE: 1, STAMPS: 0}, None),
    "reuse=1, delay=200 ms": ({REUSE: 1, DELAY: 200}, None),
}

scenario = Scenario(
    id="tw-reuse",
    title="tcp_tw_reuse 0/1/2, timestamps and the reuse delay, with every port in TIME_WAIT",
    claims=("C28",),
    private_netns=True,  # a fresh namespace: its tcp_tw_reuse is this kernel's default
)


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
        raise ExpectationFailed(
            f"expected {ports} connections then EADDRNOTAVAIL, "
            f"got {len(held)} then {errno_name(err)}"
        )
    first_tw: float | None = None
    for conn in held:  # all closed within milliseconds: their TIME_WAITs start together
        record = await active_close(conn)
        if record.state is not S.TIME_WAIT:
            raise ExpectationFailed(f"expected TIME_WAIT, got {record.describe()}")
        first_tw = lab.clock() if first_tw is None else first_tw
    started = lab.clock()
    assert first_tw is not None
    tw_ports = sorted(c.client.four_tuple.local.port for c in held)
    tw_seen = lab.observer.snapshot(port=listener.address.port, states=[S.TIME_WAIT])
    if len(tw_seen) != ports:
        raise ExpectationFailed(f"expected {ports} TIME_WAITs, sock_diag lists {len(tw_seen)}")

    first: int | None = None
    attempts = 0
    after: float | None = None
    port: int | None = None
    while lab.clock() - started <= WINDOW:
        extra, err = await try_connect(lab, listener)
        attempts += 1
        first = err if first is None else first
        if extra is not None:
            after = lab.clock() - started
            port = extra.client.four_tuple.local.port
            break
        await trio.sleep(RETRY)
    return {
        "sysctls": {k: sysctl.read(k) for k in (REUSE, DELAY, STAMPS, *RANGE)},
        "address": listener.address.host, "client": str(held[0].client.four_tuple.local),
        "usable_ports": ports, "time_wait_ports": tw_ports,
        "first_try": errno_name(first or 0), "attempts": attempts,
        "succeeded_after_s": None if after is None else round(after, 3),
        "since_first_time_wait_s": None if after is None else round(after + started - first_tw, 3),
        "reused_port": port, "took_over_time_wait": port in tw_ports,
    }


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    default = {k: sysctl.read(k) for k in (REUSE, DELAY, STAMPS)}
    results: dict[str, dict[str, Any]] = {}
    failures: list[Exception] = []

    async def one(name: str, settings: dict[str, str | int], address: str | None) -> None:
        try:
            results[name] = await run_isolated(
                __file__, "probe_reuse", sysctls={**RANGE, **settings}, seconds=WINDOW + 6,
                address=address,
            )
        except Exception as exc:  # kept and raised below, unwrapped by the nursery
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        for name, (settings, address) in SETTINGS.items():
            nursery.start_soon(one, name, settings, address)
    if failures:
        raise failures[0]
    verdicts.note("tw_reuse", results)

    def reused(name: str) -> bool:
        r = results[name]
        return r["succeeded_after_s"] is not None and r["took_over_time_wait"] is True

    def waited(name: str) -> bool:  # refused at first, as long as the delay runs
        return bool(results[name]["first_try"] == "EADDRNOTAVAIL")

    works_on = reused("reuse=1") and waited("reuse=1")
    off_blocks = not reused("reuse=0") and results["reuse=0"]["first_try"] == "EADDRNOTAVAIL"
    needs_stamps = not reused("reuse=1, timestamps=0")
    loopback_only = reused("reuse=2 on 127.0.0.1") and not reused(f"reuse=2 on {OTHER}")
    default_zero = default[REUSE] == "0"
    if works_on and off_blocks:
        verdict = Verdict.CONFIRMED if default_zero and not needs_stamps else Verdict.PARTLY
    else:
        verdict = Verdict.REFUTED

    def show(name: str) -> str:
        r = results[name]
        if r["succeeded_after_s"] is None:
            return f"{name}: {r['first_try']} for {WINDOW:.0f} s ({r['attempts']} tries)"
        after = r["succeeded_after_s"]
        return f"{name}: {r['first_try']} first, reused a TIME_WAIT port after {after} s"

    # Drawn in the report: how each port the probes fill gets its TIME_WAIT (the probes
    # themselves run in namespaces of their own).
    await drawn_example(lab, requests=0, closer="client")
    verdicts.record(
        "C28", verdict,
        "; ".join(show(n) for n in SETTINGS)
        + f". Default in a fresh namespace: tcp_tw_reuse={default[REUSE]}"
        + (" (loopback addresses only, as measured)" if loopback_only else "")
        + f", tcp_tw_reuse_delay={default[DELAY]} ms"
        + ("; reuse needs TCP timestamps" if needs_stamps else ""),
        default=default, settings=results,
    )


if __name__ == "__main__":
    scenario.main()

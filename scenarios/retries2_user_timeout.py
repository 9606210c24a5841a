"""Data to a peer that vanished: when the kernel kills the connection, by tcp_retries2 and by
TCP_USER_TIMEOUT (claim K03).

The kernel's documentation (ip-sysctl.rst) models tcp_retries2 as a time: N retransmissions
from a 200 ms RTO, doubling (924.6 s at the default 15), a lower bound of the effective
timeout, which is the first RTO past it. Here three connections lead to a far namespace
that then vanishes (``_vanish``); each client sends one byte and blocks in recv() until the
kernel fails it. tcp_retries2 is 3 in this namespace; two of the clients also set
TCP_USER_TIMEOUT (2 s and 5 s: shorter and longer than tcp_retries2's). Each byte's
retransmissions are captured; the default and TCP_RTO_MAX are read in a fresh namespace and
the 924.6 s is projected from the measured RTOs, not waited out.
"""

from __future__ import annotations

import socket

import trio

from _defaults import fresh_netns_ints
from _vanish import Wire, after, data, failure, far_listener, pair, vanishing
from tcplab import Lab, Scenario, Verdicts
from tcplab.judges.retries import Abandoned, Retries2UserTimeout

RETRIES2, USER_TIMEOUTS_MS = 3, (2000, 5000)
DEFAULTS = ("net.ipv4.tcp_retries2", "net.ipv4.tcp_rto_max_ms")
scenario = Scenario(
    id="retries2-user-timeout",
    title="Unacknowledged data to a vanished peer: tcp_retries2 and TCP_USER_TIMEOUT",
    claims=("K03",),
    sysctls={"net.ipv4.tcp_retries2": RETRIES2},
    timeout=40,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    ends: list[Abandoned] = []
    async with vanishing() as part:
        listener = await far_listener(part)
        clients = [(await pair(part, listener))[0] for _ in range(1 + len(USER_TIMEOUTS_MS))]
        for client, ms in zip(clients[1:], USER_TIMEOUTS_MS, strict=True):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, ms)
        part.vanish("far")
        wire = Wire(part.capture())
        results: dict[int, tuple[float | None, str | None]] = {}

        async def abandon(client: socket.socket) -> None:
            client.send(b"x")
            results[client.fileno()] = await failure(client, up_to=20)

        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(abandon, client)
        for client in clients:
            sent = wire.sent(client.getsockname()[1], data)
            killed_at, errno = results[client.fileno()]
            ends.append(Abandoned(after(sent[1:], sent[0].t) if sent else (),
                                  None if killed_at is None or not sent else killed_at - sent[0].t,
                                  errno))
    defaults = await fresh_netns_ints(*DEFAULTS)
    verdicts.judge("K03", Retries2UserTimeout(
        RETRIES2, ends[0], USER_TIMEOUTS_MS, tuple(ends[1:]),
        default_retries2=defaults[DEFAULTS[0]], rto_max_ms=defaults[DEFAULTS[1]]))


if __name__ == "__main__":
    scenario.main()

"""SO_LINGER with a zero timeout: no TIME_WAIT, at the price of a reset (claim C36; seed 004).

Seed 004 mentions turning lingering off to avoid TIME_WAIT, and warns that the protocol
advises against it. Two connections are closed with SO_LINGER {on, 0}: an idle one, and one
whose peer has not read what was queued towards it (its window closed on purpose, so bytes
wait in the aborting end's send buffer). Measured: every state either end was seen in, the
RSTs this namespace sent, what the idle one's peer sees, and how many queued bytes arrived.
A graceful close of a third connection shows the TIME_WAIT that the abort avoided.
"""

from __future__ import annotations

from tcplab import End, Lab, Scenario, TcpState, Verdicts
from tcplab.judges.timers import LingerAbort
from tcplab.kernel.procfs import counter_delta, netstat_counters
from tcplab.lab import errno_name
from tcplab.measure import leaves, path_of, state_of

S = TcpState
scenario = Scenario(
    id="linger-abort",
    title="SO_LINGER 0 abort: RST instead of FIN, no TIME_WAIT anywhere, queued data lost",
    claims=("C36",),
    private_netns=True,  # Tcp.OutRsts counts this scenario's resets only
)


async def drain(end: End) -> tuple[int, str]:
    """Read until the stream ends: bytes received, and how it ended (errno, or end-of-file)."""
    received = 0
    try:
        while chunk := await end.recv():
            received += len(chunk)
    except OSError as exc:
        return received, errno_name(exc.errno or 0)
    return received, "end-of-file"


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    idle = await lab.connect()
    busy = await lab.connect(sndbuf=16384, server_rcvbuf=4096)
    queued = busy.client.fill()
    before = netstat_counters()
    for conn in (idle, busy):
        await conn.client.abort()
        await leaves(conn.client, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2)
        await leaves(conn.server, S.ESTABLISHED)
    resets = counter_delta(before, netstat_counters()).get("Tcp.OutRsts", 0)
    peer = idle.server.observe()
    _, ended = await drain(idle.server)
    delivered, _ = await drain(busy.server)

    calm = await lab.connect()
    await calm.client.close()
    await calm.server.read_eof()
    await calm.server.close()
    graceful = await leaves(calm.client, S.ESTABLISHED, S.FIN_WAIT1, S.FIN_WAIT2)
    states = tuple(s for c in (idle, busy) for end in ("client", "server") for s in path_of(c, end))
    verdicts.judge("C36", LingerAbort(
        states, state_of(graceful), resets, peer is not None and peer.fd_only,
        ended, queued, delivered))


if __name__ == "__main__":
    scenario.main()

"""How often an operator sees FIN_WAIT1 and FIN_WAIT2, sampled over many closes (C08; seeds
002, 003).

The articles say FIN_WAIT1 is hard to catch because the peer acknowledges a FIN at once,
while FIN_WAIT2 is often seen: it lasts until the peer closes. Here ``N`` connections are
closed by the client, ``STAGGER`` s apart, while every ``_finwait.SAMPLE_S`` s a dump of
the namespace's sockets counts those in FIN_WAIT1 and FIN_WAIT2 (as repeated ``ss`` would).
In each workload the peer application is busy ``DELAY`` s after the close:

* idle closer: the peer closes ``DELAY`` s after the FIN (its kernel acknowledged the FIN
  alone, after Linux's delayed ACK);
* slow reader: the closer still had a window's worth of data in flight, and the peer reads
  nothing for ``DELAY`` s: its FIN waits behind that data, FIN_WAIT1 held on purpose.

The shares of the observations, and the mean time per connection in each state, decide.
"""

from __future__ import annotations

from _finwait import workload
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import holds
from tcplab.judges.segments import FinWaitShares

N = 40
STAGGER = 0.01
DELAY = 0.5
scenario = Scenario(
    id="fin-wait1",
    title="FIN_WAIT1 and FIN_WAIT2 as sampled over many closes: idle closer and slow reader",
    claims=("C08",),
    private_netns=True,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    idle = await workload("idle closer", N, STAGGER, DELAY, data_in_flight=False)
    slow = await workload("slow reader", N, STAGGER, DELAY, data_in_flight=True)
    # One close through the lab, held on purpose for the report and `tcplab states`: the FIN
    # waits behind data the peer does not read, then the peer reads but does not close.
    conn = await lab.connect(sndbuf=4096, server_rcvbuf=4096)
    conn.client.fill()
    await conn.client.send_eof()
    await holds(conn.client, TcpState.FIN_WAIT1, for_=1.0, mark=True)
    await conn.server.read_eof()
    await holds(conn.client, TcpState.FIN_WAIT2, for_=1.0, mark=True)
    await holds(conn.server, TcpState.CLOSE_WAIT, for_=0.0, mark=True)
    await conn.server.close()

    verdicts.judge("C08", FinWaitShares(idle, slow, peer_delay_s=DELAY, reader_pause_s=DELAY))


if __name__ == "__main__":
    scenario.main()

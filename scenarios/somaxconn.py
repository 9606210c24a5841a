"""net.core.somaxconn against the backlog listen() asks for (claim K06).

The kernel's documentation says somaxconn caps the listen() backlog, 4096 by default since
Linux 5.4 (128 before). Here it is 8 in the scenario's own namespace: one listener asks for
64, another for 4, and sock_diag reports the limit each got (ss's Send-Q for a listener).
Then twelve clients connect to the first while nobody accepts (its accept queue held full
on purpose), and are counted before the first SYN retransmission (1 s): completed into the
queue, or left in SYN_SENT because the full queue dropped their SYNs. The default is read
in a fresh namespace. The value in force is read (``tcplab try`` runs this with an
operator's).
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import within
from tcplab.judges.queues import Somaxconn
from tcplab.kernel import sysctl

S = TcpState
SOMAXCONN, CAP, ASKED, BELOW, CLIENTS = "net.core.somaxconn", 8, 64, 4, 12
scenario = Scenario(
    id="somaxconn",
    title="somaxconn=8: the backlog listen(64) and listen(4) get, and the queue it allows",
    claims=("K06",),
    sysctls={SOMAXCONN: CAP},
    measures=(SOMAXCONN,),
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    cap = sysctl.read_int(SOMAXCONN) or 0  # CAP, unless tcplab try overrides it
    capped, below = await lab.listen(backlog=ASKED), await lab.listen(backlog=BELOW)
    limits = [r.send_q if (r := listener.observe()) else None for listener in (capped, below)]
    clients = [await lab.start_connect(capped) for _ in range(CLIENTS)]

    def census() -> tuple[int, int]:
        record = capped.observe()
        states = [r.state if (r := c.observe()) else None for c in clients]
        return (record.recv_q if record else 0), states.count(S.SYN_SENT)

    await within(lambda: sum(census()) == CLIENTS, timeout=0.8)  # each client accounted for
    queued, syn_sent = census()
    default = (await fresh_netns_ints(SOMAXCONN))[SOMAXCONN]

    verdicts.judge("K06", Somaxconn(cap, ASKED, limits[0], BELOW, limits[1], CLIENTS, queued,
                                    syn_sent, default))


if __name__ == "__main__":
    scenario.main()

"""A burst of connection attempts with tcp_syncookies=0 (claim C33; seeds 002, 000).

Seed 002 says tcp_max_syn_backlog (1024 by default, to be raised to 8192) sets how many
half-open connections may wait. Here, in a namespace with syncookies off and
tcp_max_syn_backlog=64, 200 clients try to connect to listeners that never accept:

1. listen(128), final ACKs dropped (a SYN flood's half-open connections): how many request
   sockets wait in SYN_RECV before new SYNs are dropped?
2. listen(16), same: does the listen backlog or tcp_max_syn_backlog bound the SYN queue?
3. listen(8), handshakes complete: the accept queue, the limit real clients meet first.

Clients whose SYN was dropped stay in SYN_SENT (they will retransmit); the others think
they are ESTABLISHED. The verdict compares the measured caps with the sysctl, and the
claimed default with the one a fresh namespace gets on this kernel.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _synflood import burst
from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import ExpectationFailed

S = TcpState
MAX_SYN_BACKLOG = 64
ATTEMPTS = 200
scenario = Scenario(
    id="synflood-cookies-0",
    title="SYN queue and accept queue under a connection burst, tcp_syncookies=0",
    claims=("C33",),
    sysctls={"net.ipv4.tcp_syncookies": 0, "net.ipv4.tcp_max_syn_backlog": MAX_SYN_BACKLOG},
    timeout=15,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    wide = await burst(lab, count=ATTEMPTS, backlog=128, half_open=True)
    narrow = await burst(lab, count=ATTEMPTS, backlog=16, half_open=True)
    full = await burst(lab, count=ATTEMPTS, backlog=8, half_open=False)
    defaults = await fresh_netns_ints("net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies")
    for name, flood in (("wide", wide), ("narrow", narrow), ("accept_queue", full)):
        verdicts.note(f"burst_{name}", flood.to_json())
    verdicts.note("fresh_netns_defaults", defaults)

    # What the kernel must have done for these figures to mean anything.
    for flood in (wide, narrow):
        if flood.counter("SyncookiesSent") or flood.clients(S.ESTABLISHED) != flood.syn_recv:
            raise ExpectationFailed(f"half-open burst: every ESTABLISHED client should match one "
                                    f"SYN_RECV request and no cookie be sent: {flood.to_json()}")
    if full.syn_recv or full.accept_queue != full.clients(S.ESTABLISHED):
        raise ExpectationFailed(f"accept-queue burst: unexpected census {full.to_json()}")

    # Without cookies the kernel keeps the last quarter of tcp_max_syn_backlog for peers it
    # has already talked to: an unknown peer is refused once 3/4 of it is in use.
    three_quarters = MAX_SYN_BACKLOG - MAX_SYN_BACKLOG // 4
    capped_by_sysctl = three_quarters <= wide.syn_recv <= three_quarters + 1
    capped_by_backlog = narrow.syn_recv in (16, 17) and narrow.counter("TCPReqQFullDrop") > 0
    full_sysctl = wide.syn_recv >= MAX_SYN_BACKLOG
    refused_stay = wide.clients(S.SYN_SENT) == ATTEMPTS - wide.syn_recv
    default = defaults["net.ipv4.tcp_max_syn_backlog"]
    if full_sysctl and default == 1024:
        verdict = Verdict.CONFIRMED
    elif capped_by_sysctl and capped_by_backlog and refused_stay:
        verdict = Verdict.PARTLY
    else:
        verdict = Verdict.REFUTED
    verdicts.record(
        "C33", verdict,
        f"with syncookies off, tcp_max_syn_backlog={MAX_SYN_BACKLOG} let {wide.syn_recv} "
        f"half-open connections wait (3/4 of it: tcp_conn_request keeps the last quarter for "
        f"peers it has talked to before), the other "
        f"{wide.clients(S.SYN_SENT)} SYNs were dropped (ListenDrops "
        f"{wide.counter('ListenDrops')}, clients stuck in SYN_SENT); with listen(16) only "
        f"{narrow.syn_recv} waited (TCPReqQFullDrop {narrow.counter('TCPReqQFullDrop')}): the "
        f"listen backlog bounds the SYN queue too; completed handshakes stop at the accept "
        f"queue ({full.accept_queue} for listen(8), ListenOverflows "
        f"{full.counter('ListenOverflows')}). Default here {default}, not 1024 (derived from "
        f"the connection hash size); with syncookies on (fresh-namespace default "
        f"{defaults['net.ipv4.tcp_syncookies']}) the sysctl caps nothing (synflood-cookies-1)",
        syn_recv_wide=wide.syn_recv, syn_recv_narrow=narrow.syn_recv,
        accept_queue=full.accept_queue, fresh_default=default,
        fresh_syncookies=defaults["net.ipv4.tcp_syncookies"],
    )


if __name__ == "__main__":
    scenario.main()

"""A burst of connection attempts with tcp_syncookies=1 (claims C32, C33; seeds 000, 002).

Seeds 000 and 002 say tcp_syncookies=1 makes the kernel answer with SYN cookies once the
SYN queue overflows, so a small SYN flood does no harm, and that the default is 0; seed 002
adds that tcp_max_syn_backlog bounds the half-open connections. Here (syncookies=1,
tcp_max_syn_backlog=64) 200 clients try to connect:

1. listen(128), final ACKs dropped: the SYN queue fills as under a flood; the SYNs beyond it
   should get cookies (a SYN-ACK without any state kept), so every client gets an answer.
2. listen(8), handshakes complete: the accept queue fills. Do cookies help there?

The verdict comes from the counters (SyncookiesSent, TCPReqQFullDoCookies, ListenOverflows),
the SYN_RECV count and the clients' states, and from the default of a fresh namespace.
"""

from __future__ import annotations

from _defaults import fresh_netns_ints
from _synflood import burst
from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import ExpectationFailed

S = TcpState
MAX_SYN_BACKLOG = 64
ATTEMPTS = 200
BACKLOG = 128
scenario = Scenario(
    id="synflood-cookies-1",
    title="SYN cookies when the SYN queue overflows, not when the accept queue does (syncookies=1)",
    claims=("C32", "C33"),
    sysctls={"net.ipv4.tcp_syncookies": 1, "net.ipv4.tcp_max_syn_backlog": MAX_SYN_BACKLOG},
    timeout=15,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    flood = await burst(lab, count=ATTEMPTS, backlog=BACKLOG, half_open=True)
    full = await burst(lab, count=ATTEMPTS, backlog=8, half_open=False)
    defaults = await fresh_netns_ints("net.ipv4.tcp_syncookies", "net.ipv4.tcp_max_syn_backlog")
    verdicts.note("burst_half_open", flood.to_json())
    verdicts.note("burst_accept_queue", full.to_json())
    verdicts.note("fresh_netns_defaults", defaults)
    if full.syn_recv or full.accept_queue != full.clients(S.ESTABLISHED):
        raise ExpectationFailed(f"accept-queue burst: unexpected census {full.to_json()}")

    cookies = flood.counter("SyncookiesSent")
    queue_then_cookies = (
        flood.syn_recv in (BACKLOG, BACKLOG + 1)
        and cookies == ATTEMPTS - flood.syn_recv
        and flood.counter("TCPReqQFullDoCookies") == cookies
        and flood.clients(S.ESTABLISHED) == ATTEMPTS  # every SYN was answered
    )
    accept_queue_no_help = (
        full.counter("SyncookiesSent") == 0
        and full.counter("ListenOverflows") >= full.clients(S.SYN_SENT) > 0
    )
    default = defaults["net.ipv4.tcp_syncookies"]
    if not queue_then_cookies:
        c32 = Verdict.REFUTED
    elif default == 0 and not accept_queue_no_help:
        c32 = Verdict.CONFIRMED
    else:  # the mechanism holds, but the default differs or the accept queue still drops SYNs
        c32 = Verdict.PARTLY
    verdicts.record(
        "C32", c32,
        f"the SYN queue took {flood.syn_recv} half-open connections (listen({BACKLOG}) + 1), then "
        f"the kernel answered the other {cookies} SYNs with cookies (SyncookiesSent, "
        f"TCPReqQFullDoCookies {flood.counter('TCPReqQFullDoCookies')}): all {ATTEMPTS} clients "
        f"got a SYN-ACK. But with a full accept queue (listen(8)) no cookie was sent: "
        f"{full.counter('ListenOverflows')} SYNs were dropped (ListenOverflows), "
        f"{full.clients(S.SYN_SENT)} clients left in SYN_SENT. The default here is "
        f"{default}, not 0",
        syn_recv=flood.syn_recv, cookies_sent=cookies, fresh_default=default,
        accept_queue_cookies=full.counter("SyncookiesSent"),
        accept_queue_overflows=full.counter("ListenOverflows"),
    )
    beyond_sysctl = flood.syn_recv > MAX_SYN_BACKLOG
    verdicts.record(
        "C33", Verdict.of(not beyond_sysctl, otherwise=Verdict.PARTLY),
        f"with syncookies on, tcp_max_syn_backlog={MAX_SYN_BACKLOG} did not bound the half-open "
        f"connections: {flood.syn_recv} waited in SYN_RECV, bounded by the listen backlog "
        f"({BACKLOG}); the sysctl only matters with syncookies off (synflood-cookies-0). Fresh "
        f"namespace default: {defaults['net.ipv4.tcp_max_syn_backlog']}, not 1024",
        syn_recv=flood.syn_recv, max_syn_backlog=MAX_SYN_BACKLOG,
        fresh_default=defaults["net.ipv4.tcp_max_syn_backlog"],
    )


if __name__ == "__main__":
    scenario.main()

"""A burst of connection attempts with tcp_syncookies=2 (claim C32; seeds 000, 002).

Seeds 000 and 002 know two settings, cookies off and cookies on overflow; the kernel has a
third: 2 sends a cookie for every SYN, keeping no request socket at all. Here 200 clients
connect to a listener whose final ACKs are dropped, then to one whose accept queue fills.
If no SYN_RECV exists and every SYN got a cookie, the claim is only part of the story.
"""

from __future__ import annotations

from _synflood import burst
from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import ExpectationFailed

S = TcpState
ATTEMPTS = 200
scenario = Scenario(
    id="synflood-cookies-2",
    title="tcp_syncookies=2: a cookie for every SYN, the accept queue still the limit",
    claims=("C32",),
    sysctls={"net.ipv4.tcp_syncookies": 2},
    timeout=15,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    flood = await burst(lab, count=ATTEMPTS, backlog=128, half_open=True)
    full = await burst(lab, count=ATTEMPTS, backlog=8, half_open=False)
    verdicts.note("burst_half_open", flood.to_json())
    verdicts.note("burst_accept_queue", full.to_json())
    if full.accept_queue != full.clients(S.ESTABLISHED):
        raise ExpectationFailed(f"accept-queue burst: unexpected census {full.to_json()}")

    always = (
        flood.syn_recv == 0
        and flood.counter("SyncookiesSent") == ATTEMPTS
        and flood.clients(S.ESTABLISHED) == ATTEMPTS
    )
    # Completed cookie handshakes are checked (SyncookiesRecv) and queued; the accept queue
    # still refuses the rest, even though a cookie was wanted for each (DoCookies).
    accept_limit = (
        full.counter("SyncookiesRecv") == full.accept_queue
        and full.counter("ListenOverflows") >= full.clients(S.SYN_SENT) > 0
    )
    verdicts.record(
        "C32", Verdict.PARTLY if always and accept_limit else Verdict.REFUTED,
        f"with tcp_syncookies=2 every SYN got a cookie ({flood.counter('SyncookiesSent')} of "
        f"{ATTEMPTS}, {flood.syn_recv} SYN_RECV), not only on overflow: a setting the articles "
        f"leave out. A full accept queue still drops SYNs: {full.counter('ListenOverflows')} "
        f"ListenOverflows, {full.counter('SyncookiesSent')} cookies sent and "
        f"{full.counter('SyncookiesRecv')} validated for {full.accept_queue} queued connections",
        syn_recv=flood.syn_recv, cookies_sent=flood.counter("SyncookiesSent"),
        accept_queue=full.accept_queue, listen_overflows=full.counter("ListenOverflows"),
    )


if __name__ == "__main__":
    scenario.main()

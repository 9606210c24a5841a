"""SYN_SENT held by a full accept queue, no firewall needed (C01; seeds 002, 003).

The articles describe SYN_SENT as the client's state between its SYN and the server's
SYN-ACK, and say little about how long it can last. On Linux a listener whose accept queue
is full drops new SYNs outright (TcpExt.ListenOverflows and ListenDrops count them), so a
client that connects to it stays in SYN_SENT, retransmitting its SYN on a timer, for as
long as the server application does not accept. Here the listener's backlog is 0 (room for
one connection), one connection fills it, a second client's non-blocking connect stays in
SYN_SENT for over a second while the kernel reports its retransmission timer firing, and
once the application accepts the first connection the next retransmitted SYN gets through.

In a private network namespace (root) the counters belong to this scenario alone and their
increase is exact; on the host's loopback other traffic may add to them, so they are only
checked to rise.
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, TimerKind, Verdicts
from tcplab.expect import ExpectationFailed, holds, path_seen, reaches, within
from tcplab.kernel import netns
from tcplab.kernel.procfs import counter_delta, netstat_counters

S = TcpState
DROPS = ("TcpExt.ListenOverflows", "TcpExt.ListenDrops")
scenario = Scenario(
    id="syn-sent",
    title="SYN_SENT held by a listener whose accept queue is full; its SYNs dropped and retried",
    claims=(),
    netns_if_root=True,
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    listener = await lab.listen(backlog=0)  # the accept queue holds one connection ...
    await lab.open_client(listener)  # ... this one, which the application does not accept yet
    before = netstat_counters()

    client = await lab.start_connect(listener)
    # The server side has no socket at all while its SYNs are dropped (not even a request
    # socket): it shows as gone until the handshake completes. The listener is watched too.
    conn = lab.track(client, listener.pending_end(client))
    server = conn.server
    full = await reaches(conn.join(listener.as_end()), S.LISTEN)
    if full.recv_q != 1:
        raise ExpectationFailed(f"expected one connection in the accept queue; kernel: {full.describe()}")

    # Held until the SYN was retransmitted at least once (Linux's first SYN timeout is 1 s).
    held = await holds(client, S.SYN_SENT, for_=1.0, mark=True)
    while held.timer.fired < 1:
        held = await holds(client, S.SYN_SENT, for_=0.05, mark=True)
    if held.timer.kind is not TimerKind.RETRANSMIT:
        raise ExpectationFailed(f"expected the SYN retransmission timer; kernel: {held.describe()}")
    def drops_now() -> dict[str, int]:
        return {k: v for k, v in counter_delta(before, netstat_counters()).items() if k in DROPS}

    # Each SYN is counted when the listener's softirq gets to it: under load, a moment after
    # the timer that sent it fired. Waited for (bounded), then read once.
    await within(lambda: all(drops_now().get(k, 0) > held.timer.fired for k in DROPS), timeout=1.0)
    drops = drops_now()
    after = await reaches(client, S.SYN_SENT)
    private = netns.private() is not None
    # Every SYN sent so far was dropped: the first one and each retransmission (one more may
    # have gone out between the two readings of the timer).
    sent = range(held.timer.fired + 1, after.timer.fired + 2)
    exact = all(drops.get(k, 0) in sent for k in DROPS)
    if not (exact if private else all(drops.get(k, 0) >= 1 for k in DROPS)):
        raise ExpectationFailed(
            f"expected {', '.join(DROPS)} to rise by the {sent.start}..{sent.stop - 1} SYNs sent "
            f"(private netns: "
            f"{private}); saw {drops}"
        )

    # The application accepts the queued connection; the next retransmitted SYN gets in.
    await listener.accept()
    await reaches(client, S.ESTABLISHED, timeout=10.0)
    await client.connected()
    await reaches(server, S.ESTABLISHED)  # in the accept queue, no fd yet
    await listener.accept()  # the same socket, now with an fd: found by the same four-tuple
    await holds(server, S.ESTABLISHED, for_=0.1)
    path_seen(client, S.SYN_SENT, S.ESTABLISHED)
    path_seen(server, None, S.ESTABLISHED)  # no SYN_RECV: each SYN was dropped on arrival

    verdicts.note("syn_sent", {
        "syn_retransmissions_while_held": held.timer.fired,
        "timer_while_held": {"kind": held.timer.kind.value, "remaining_s": held.timer.remaining},
        "listen_drops": drops, "counters_exact": private,
        "listener_queue": {"recv_q": full.recv_q, "send_q": full.send_q},
    })


if __name__ == "__main__":
    scenario.main()

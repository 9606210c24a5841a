"""tcp_max_tw_buckets: a cap on TIME_WAIT sockets (claim C30; seed 002).

Seed 002 says the tunable caps how many TIME_WAIT sockets the system keeps, that the ones
beyond it are destroyed at once with a warning, and that the default is 180000. Here the cap
is 5 in a private namespace; twenty connections are closed client-first one after another.
Measured: how many TIME_WAITs sock_diag lists, what became of the other closers, the
``TcpExt.TCPTimeWaitOverflow`` counter, and what the kernel log says meanwhile. The default
is read in a fresh namespace, next to the established-hash size it is derived from (half of
it, in ``tcp_sk_init``).
"""

from __future__ import annotations

from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts
from tcplab.expect import ExpectationFailed
from tcplab.isolated import fresh_sysctls
from tcplab.kernel.kmsg import KernelLog
from tcplab.kernel.procfs import counter_delta, netstat_counters
from tcplab.ports import active_close

S = TcpState
BUCKETS = "net.ipv4.tcp_max_tw_buckets"
CAP = 5
CLOSES = 20
ARTICLE_DEFAULT = 180000
OVERFLOW = "TcpExt.TCPTimeWaitOverflow"

scenario = Scenario(
    id="tw-buckets",
    title="tcp_max_tw_buckets=5 and twenty active closes: the TIME_WAITs kept and the rest",
    claims=("C30",),
    sysctls={BUCKETS: CAP},
)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    listener = await lab.listen(backlog=CLOSES)
    before = netstat_counters()
    with KernelLog() as log:
        closers = []
        for _ in range(CLOSES):
            conn = await lab.connect(listener)
            closers.append((conn, await active_close(conn)))
        messages = log.since()
    delta = counter_delta(before, netstat_counters()).get(OVERFLOW, 0)

    kept = [c for c, r in closers if r.state is S.TIME_WAIT]
    dropped = [c for c, r in closers if r.state is S.CLOSED]
    listed = lab.observer.snapshot(port=listener.address.port, states=[S.TIME_WAIT])
    lingering = [c for c in dropped if lab.observer.lookup(c.client.four_tuple) is not None]
    if len(kept) + len(dropped) != CLOSES or lingering:
        raise ExpectationFailed(f"closers neither TIME_WAIT nor gone: {len(lingering)} linger")
    overflow_lines = [m for m in messages if "time wait" in m.lower() or "timewait" in m.lower()]
    fresh = await fresh_sysctls([BUCKETS, "net.ipv4.tcp_ehash_entries"])
    default = int(fresh[BUCKETS] or 0)
    ehash = abs(int(fresh["net.ipv4.tcp_ehash_entries"] or 0))  # negative: the shared table
    derived = f" (half of the {ehash}-entry established hash)" if ehash == 2 * default else ""

    capped = len(listed) == CAP and len(kept) == CAP and delta == CLOSES - CAP
    warned = bool(overflow_lines)
    default_ok = default == ARTICLE_DEFAULT
    if not capped:
        verdict = Verdict.REFUTED
    else:
        verdict = Verdict.CONFIRMED if warned and default_ok else Verdict.PARTLY
    verdicts.record(
        "C30", verdict,
        f"cap {CAP}: {len(listed)} TIME_WAITs listed after {CLOSES} active closes; the other "
        f"{len(dropped)} closers went straight to CLOSED (no TIME_WAIT), {OVERFLOW} +{delta}; "
        + (f"kernel log: {overflow_lines[0]!r}" if warned else
           f"no kernel log line about it ({len(messages)} unrelated records meanwhile)")
        + f"; default in a fresh namespace {default}{derived}"
        + ("" if default_ok else f", not {ARTICLE_DEFAULT}"),
        time_wait_listed=len(listed), dropped=len(dropped), overflow_counter_delta=delta,
        kernel_log=overflow_lines, kernel_log_records_meanwhile=len(messages),
        fresh_namespace=fresh,
    )


if __name__ == "__main__":
    scenario.main()

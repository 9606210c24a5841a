"""tcp_max_tw_buckets: a cap on TIME_WAIT sockets (claim C30; article 002).

Article 002 says the tunable caps how many TIME_WAIT sockets the system keeps, that those
beyond it are destroyed at once with a warning, and that the default is 180000. Here the cap
is 5 in a private namespace and twenty connections are closed client-first one after another.
Measured: how many TIME_WAITs sock_diag lists, how many closers skipped TIME_WAIT, the
TcpExt.TCPTimeWaitOverflow counter, and the kernel log meanwhile. The log reader is shown to
work first: it must read the kernel's own SYN-flood notice, provoked on a listener of ours
(a TCP message printed through net_ratelimit, as the old overflow warning was). The default
is read in a fresh namespace next to the established-hash size it is derived from.
"""

from __future__ import annotations

from _synflood import synflood_notice
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.isolated import fresh_sysctls
from tcplab.judges.tuning import TwBuckets
from tcplab.kernel.kmsg import KernelLog
from tcplab.kernel.procfs import counter_delta, netstat_counters
from tcplab.ports import active_close

S = TcpState
BUCKETS, EHASH = "net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_ehash_entries"
CAP, CLOSES = 5, 20
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
        control = await synflood_notice(lab, log)
        closers = [await active_close(await lab.connect(listener)) for _ in range(CLOSES)]
        messages = log.since()
    overflow = counter_delta(before, netstat_counters()).get("TcpExt.TCPTimeWaitOverflow", 0)
    listed = lab.observer.snapshot(port=listener.address.port, states=[S.TIME_WAIT])
    fresh = await fresh_sysctls([BUCKETS, EHASH])

    warnings = tuple(m for m in messages if "time wait" in m.lower() or "timewait" in m.lower())
    verdicts.note("kernel_log_records_meanwhile", len(messages))
    verdicts.judge("C30", TwBuckets(
        CAP, CLOSES, time_wait=len(listed), skipped=sum(r.state is S.CLOSED for r in closers),
        overflow_counter=overflow, control_line=control, warnings=warnings,
        default=int(fresh[BUCKETS] or 0) or None,
        ehash_entries=abs(int(fresh[EHASH] or 0)) or None))  # negative: the shared table


if __name__ == "__main__":
    scenario.main()

"""Counting sockets per state and naming owners with netstat and lsof (claim C40; seeds 002,
003, 004).

The seeds count connections per state with ``netstat -n | awk '/^tcp/ {++S[$NF]} ...'``
and read each socket's state and owner from ``netstat -a`` or ``lsof -i``. Here, in a
private network namespace (so the tables hold nothing else), an ordinary line server runs
in one process and its clients in another: some idle, some the server said goodbye to (they
read the end and closed, or have not looked yet), some that closed first. Nothing is held
on purpose: the states are whatever ordinary closes leave, TIME_WAIT included. Once the
kernel's tables settle, the same sockets are read by sock_diag with /proc/*/fd (the truth),
by that netstat | awk pipeline, by ``netstat -tanp`` and by ``lsof -i``, socket by socket.
(``netstat -a`` alone prints no owner: ``-p`` adds the PID/Program column.) Needs the
``netstat`` (package net-tools) and ``lsof`` commands; skipped with that reason without them.
"""

from __future__ import annotations

import sys
from collections import Counter

from _closewait import read_line
from _netstat import CLIENTS, SERVER, compare, lsof_i, netstat_awk, netstat_tanp, on_port
from tcplab import Lab, Scenario, Verdicts
from tcplab.expect import eventually
from tcplab.judges.closewait import StateTools
from tcplab.kernel.procfs import with_owners

scenario = Scenario(
    id="watch-vs-netstat",
    title="Per-state counts and owners: netstat | awk, netstat -tanp and lsof -i against the kernel",
    claims=("C40",),
    requires=("netstat", "lsof"),
    private_netns=True,
    timeout=60,  # lsof and netstat -p scan every process's fds: slow on a busy host
)
SETTLED = {"LISTEN": 1, "ESTABLISHED": 8, "TIME_WAIT": 6, "CLOSE_WAIT": 2, "FIN_WAIT2": 2}


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    server = await lab.spawn([sys.executable, "-c", SERVER])
    port = int(await read_line(server))
    lab.watch_port(port)
    clients = await lab.spawn([sys.executable, "-c", CLIENTS, str(port)])
    if await read_line(clients) != b"ready":
        raise EOFError("the clients did not finish their exchanges")

    def settled() -> Counter[str]:  # the workload's closes are done: no state in passing
        counts = Counter(r.state.value for r in lab.observer.snapshot(port=port))
        return counts if counts == SETTLED else Counter()

    await eventually(settled, what=f"the workload's sockets to settle at {SETTLED}")
    records = with_owners(lab.observer.snapshot(port=port))
    awk, tanp, lsof = netstat_awk(), on_port(netstat_tanp(), port), on_port(lsof_i(), port)
    kernel = Counter(r.state.value for r in records if r.state.value != "LISTEN")
    netstat_right, netstat_wrong, _ = compare(records, tanp)
    lsof_right, lsof_wrong, lsof_missing = compare(records, lsof)
    verdicts.judge("C40", StateTools(
        kernel_counts=dict(sorted(kernel.items())), netstat_counts=dict(sorted(awk.items())), sockets=len(records),
        owned=sum(1 for r in records if r.owners), lsof_right=lsof_right, lsof_wrong=lsof_wrong,
        netstat_right=netstat_right, netstat_wrong=netstat_wrong, lsof_missing=dict(sorted(lsof_missing.items()))))


if __name__ == "__main__":
    scenario.main()

"""Counting sockets per state and naming owners: netstat | awk and lsof vs tcplab watch
(claim C40; seeds 002, 003).

Seeds 002 and 003 count connections per state with ``netstat -n | awk '/^tcp/
{++S[$NF]} END {...}'`` and read each socket's state and owner from ``netstat -a`` or
``lsof -i``. Here a private network namespace holds a known mix — a listener, ESTABLISHED
pairs, leaked CLOSE_WAIT ends with their FIN_WAIT2 peers, TIME_WAITs, and a child process
holding three connections — and the same sockets are read five ways: a ``tcplab watch``
snapshot, that exact netstat | awk pipeline, ``lsof -i``, ``ss -tanp`` and psutil. tcplab
must agree with ss and psutil (else the scenario fails); netstat and lsof decide the verdict,
including what they leave out: ``netstat -n`` skips listeners, and ``lsof`` lists only
sockets a process holds, so TIME_WAIT and orphans (no owner) are invisible to it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter

import psutil
import trio

from tcplab import Lab, Scenario, TcpState, Verdict, Verdicts, watch
from tcplab.expect import ExpectationFailed, reaches
from tcplab.kernel.diag import SockDiag

S = TcpState
ESTABLISHED_PAIRS, CLOSE_WAITS, TIME_WAITS, CHILD_CONNECTIONS = 6, 4, 5, 3
AWK = "/^tcp/ {++S[$NF]} END {for (a in S) print a, S[a]}"
SS_STATES = {
    "ESTAB": "ESTABLISHED", "SYN-SENT": "SYN_SENT", "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1", "FIN-WAIT-2": "FIN_WAIT2", "TIME-WAIT": "TIME_WAIT",
    "CLOSE-WAIT": "CLOSE_WAIT", "LAST-ACK": "LAST_ACK", "LISTEN": "LISTEN", "CLOSING": "CLOSING",
}
CHILD = """
import socket, sys, time
held = [socket.create_connection((sys.argv[1], int(sys.argv[2]))) for _ in range(int(sys.argv[3]))]
print("ready", flush=True)
time.sleep(3600)
"""

scenario = Scenario(
    id="watch-vs-netstat",
    title="Per-state counts and owners: netstat | awk and lsof -i against tcplab watch, ss, psutil",
    claims=("C40",),
    private_netns=True,
    timeout=60,  # lsof, ss -p and psutil each scan every process's fds: slow on a busy host
)

Owned = Counter[tuple[int, str]]  # (pid, state) -> sockets


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


def _netstat_awk() -> dict[str, int] | None:
    """The seeds' pipeline, run as written (None when netstat or awk is missing)."""
    if not (shutil.which("netstat") and shutil.which("awk")):
        return None
    out = _run(["sh", "-c", f"netstat -n | awk '{AWK}'"])
    return {state: int(n) for state, n in (line.split() for line in out.splitlines() if line)}


def _lsof(port: int) -> Owned | None:
    """(pid, state) of every TCP socket ``lsof -i`` lists on ``port`` (None if no lsof)."""
    lsof = shutil.which("lsof")
    if lsof is None:
        return None
    out = subprocess.run([lsof, "-n", "-P", "-w", f"-iTCP:{port}"], capture_output=True,
                         text=True, timeout=60, check=False).stdout
    owned: Owned = Counter()
    for line in out.splitlines()[1:]:
        match = re.search(r"\((\w+)\)\s*$", line)
        if match:
            owned[(int(line.split()[1]), match.group(1))] += 1
    return owned


def _ss() -> tuple[dict[str, int], Owned]:
    counts: Counter[str] = Counter()
    owned: Owned = Counter()
    for line in _run(["ss", "-tanp"]).splitlines()[1:]:
        state = SS_STATES[line.split()[0]]
        counts[state] += 1
        for pid in dict.fromkeys(re.findall(r"pid=(\d+)", line)):
            owned[(int(pid), state)] += 1
    return dict(counts), owned


def _psutil() -> tuple[dict[str, int], Owned]:
    counts: Counter[str] = Counter()
    owned: Owned = Counter()
    for conn in psutil.net_connections(kind="tcp"):
        state = TcpState.parse(conn.status).value
        counts[state] += 1
        if conn.pid is not None:
            owned[(conn.pid, state)] += 1
    return dict(counts), owned


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    listener = await lab.listen(backlog=64)
    for _ in range(ESTABLISHED_PAIRS):
        await lab.connect(listener)
    for _ in range(CLOSE_WAITS):  # the peer closes, the application never does
        conn = await lab.connect(listener)
        await conn.client.close()
        conn.server.leak()
        await reaches(conn.server, S.CLOSE_WAIT)
        await reaches(conn.client, S.FIN_WAIT2)
    for _ in range(TIME_WAITS):  # the client closes first, then the server
        conn = await lab.connect(listener)
        await conn.client.close()
        await conn.server.read_eof()
        await conn.server.close()
        await reaches(conn.client, S.TIME_WAIT)
    child = await lab.spawn([sys.executable, "-c", CHILD, listener.address.host,
                             str(listener.address.port), str(CHILD_CONNECTIONS)])
    assert child.stdout is not None
    if not (await child.stdout.receive_some(64)).startswith(b"ready"):
        raise ExpectationFailed("the child did not open its connections")
    for _ in range(CHILD_CONNECTIONS):
        await listener.accept()
    await trio.lowlevel.checkpoint()

    with SockDiag() as diag:
        snap = watch.take(diag, watch.WatchFilter())
    ours = {s.value: n for s, n in snap.states.items() if n}
    owned: Owned = Counter({(p.pid, s.value): n for p, c in snap.owners.items() for s, n in c.items()})
    no_owner = sum(snap.no_owner.values())
    ss_counts, ss_owned = _ss()
    ps_counts, ps_owned = _psutil()
    for name, counts, owners in (("ss -tanp", ss_counts, ss_owned), ("psutil", ps_counts, ps_owned)):
        if counts != ours or owners != owned:
            raise ExpectationFailed(f"tcplab watch and {name} disagree: {ours} {dict(owned)} vs "
                                    f"{counts} {dict(owners)}")
    pids = {pid for pid, _ in owned}
    if pids != {os.getpid(), child.pid}:
        raise ExpectationFailed(f"owners {pids}, expected this process and the child {child.pid}")

    netstat = _netstat_awk()
    lsof = _lsof(listener.address.port)
    without_listen = {k: v for k, v in ours.items() if k != "LISTEN"}
    counts_ok = netstat == without_listen if netstat is not None else None
    owners_ok = lsof == owned if lsof is not None else None
    missing = [tool for tool, found in (("netstat", netstat), ("lsof", lsof)) if found is None]
    if counts_ok is False or owners_ok is False:
        verdict = Verdict.REFUTED
    elif missing or no_owner:
        verdict = Verdict.PARTLY
    else:
        verdict = Verdict.CONFIRMED
    lsof_listed = sum(lsof.values()) if lsof is not None else None
    verdicts.record(
        "C40", verdict,
        (f"{', '.join(missing)} not installed here: judged on what is; " if missing else "")
        + f"netstat -n | awk counted {netstat} — "
        + ("the same as tcplab/ss/psutil per state, except that `netstat -n` leaves out the "
           f"{ours.get('LISTEN', 0)} listener (it needs -a)" if counts_ok else "different from "
           f"tcplab/ss/psutil ({ours})")
        + f"; lsof -i listed {lsof_listed} sockets with their owners "
        + ("(the same pids and states as tcplab and ss -p)" if owners_ok else f"(tcplab: {owned})")
        + f" but cannot list the {no_owner} sockets no process holds "
        + f"({', '.join(f'{n} {s.value}' for s, n in snap.no_owner.items())}): they belong to "
        "nobody, so 'state and owner of each socket' holds only for owned ones; "
        "tcplab watch counts them as 'no owner'",
        tcplab_states=ours, tcplab_owned={f"{p}/{s}": n for (p, s), n in owned.items()},
        no_owner={s.value: n for s, n in snap.no_owner.items()}, netstat_awk=netstat,
        lsof_owned=None if lsof is None else {f"{p}/{s}": n for (p, s), n in lsof.items()},
        ss_states=ss_counts, psutil_states=ps_counts, missing_tools=missing,
        watch_ms=round(snap.elapsed * 1000, 2),
    )


if __name__ == "__main__":
    scenario.main()

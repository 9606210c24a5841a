"""What ``netstat`` and ``lsof`` say about sockets, parsed (watch-vs-netstat, claim C40).

Each reader returns sockets keyed by four-tuple (local, remote as the tool prints them)
with the state and the owning pids the tool gives, so they can be set against the kernel's
own tables socket by socket. The commands run as the articles write them, plus ``-P``/``-n``
so that ports and addresses stay numeric.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter

from tcplab import SocketRecord, TcpState

#: the seeds' per-state count (seeds 002, 004), verbatim
AWK = "/^tcp/ {++S[$NF]} END {for (a in S) print a, S[a]}"
Listing = dict[tuple[str, str], tuple[str, frozenset[int]]]  # (local, remote) -> state, pids


def _run(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout


def netstat_awk() -> dict[str, int]:
    """``netstat -n | awk '...'``: connections per state (netstat -n lists no listeners)."""
    out = _run(["sh", "-c", f"netstat -n | awk '{AWK}'"])
    return {TcpState.parse(s).value: int(n) for s, n in (line.split() for line in out.splitlines() if line)}


def netstat_tanp() -> Listing:
    """``netstat -tanp``: every TCP socket with its state and ``PID/Program`` ("-": none)."""
    found: Listing = {}
    for line in _run(["netstat", "-tanp"]).splitlines():
        cols = line.split()
        if len(cols) >= 7 and cols[0].startswith("tcp"):
            pid = cols[6].split("/")[0]
            found[(cols[3], cols[4])] = (TcpState.parse(cols[5]).value,
                                         frozenset({int(pid)} if pid.isdigit() else ()))
    return found


def lsof_i() -> Listing:
    """``lsof -i`` (TCP): one line per process and fd; a socket held twice has two pids."""
    found: dict[tuple[str, str], tuple[str, set[int]]] = {}
    for line in _run(["lsof", "-n", "-P", "-w", "-iTCP"]).splitlines()[1:]:
        match = re.search(r"TCP (\S+?)(?:->(\S+))? \((\w+)\)\s*$", line)
        if match:
            local, remote, state = match.groups()
            _, pids = found.setdefault((local, remote or "0.0.0.0:*"),
                                       (TcpState.parse(state).value, set()))
            pids.add(int(line.split()[1]))
    return {key: (state, frozenset(pids)) for key, (state, pids) in found.items()}


def key_of(record: SocketRecord) -> tuple[str, str]:
    """A kernel record's four-tuple as netstat and lsof print it."""
    remote = record.four_tuple.remote
    return str(record.four_tuple.local), "0.0.0.0:*" if remote.port == 0 else str(remote)


def compare(records: list[SocketRecord], listing: Listing) -> tuple[int, int, Counter[str]]:
    """Sockets the tool listed with the kernel's state and owners; listed wrong (state,
    owners, or not in the kernel's tables); and, per state, those it did not list."""
    right, missing = 0, Counter[str]()
    kernel = {key_of(r): (r.state.value, frozenset(o.pid for o in r.owners)) for r in records}
    for key, truth in kernel.items():
        if key not in listing:
            missing[truth[0]] += 1
        elif listing[key] == truth:
            right += 1
    return right, len(listing) - right, missing


def on_port(listing: Listing, port: int) -> Listing:
    """The sockets of ``listing`` with ``port`` at either end."""
    suffix = f":{port}"
    return {k: v for k, v in listing.items() if k[0].endswith(suffix) or k[1].endswith(suffix)}


#: An ordinary line server, thread per connection: answers each line with "ok", and closes
#: after answering "bye" (as an HTTP server does with "Connection: close") or at end of file.
SERVER = """
import socket, sys, threading
srv = socket.create_server(("127.0.0.1", 0), backlog=64)
print(srv.getsockname()[1], flush=True)
def handle(conn):
    for line in conn.makefile("rb"):
        conn.sendall(b"ok\\n")
        if line == b"bye\\n":
            break
    conn.close()
while True:
    threading.Thread(target=handle, args=(srv.accept()[0],), daemon=True).start()
"""

#: Its clients, as a busy client process has them: some idle, some told "bye" that read the
#: end and closed, some told "bye" that have not looked yet, some that closed first.
CLIENTS = """
import socket, sys, time
def talk(word):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(word + b"\\n")
    assert s.recv(3) == b"ok\\n"
    return s
idle = [talk(b"hi") for _ in range(4)]
for s in [talk(b"bye") for _ in range(3)]:
    assert s.recv(1) == b""
    s.close()
unseen = [talk(b"bye") for _ in range(2)]
for _ in range(3):
    talk(b"hi").close()
print("ready", flush=True)
time.sleep(3600)
"""

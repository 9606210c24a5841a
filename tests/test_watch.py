"""``tcplab watch`` against ``ss``: the same per-state counts on the same sockets.

Two set-ups: a private network namespace full of sockets in many states (root only: no
other process's churn can race the two readings), and, everywhere, the sockets of one port
that this test owns on the host's loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcplab import watch
from tcplab.kernel import procfs
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.procfs import FdMemory, socket_fds, tick_seconds
from tcplab.scenario import REQUIREMENTS
from tcplab.states import TcpState

ROOT = Path(__file__).resolve().parents[1]
SS = shutil.which("ss")
needs_ss = pytest.mark.skipif(SS is None, reason="needs ss (iproute2)")

#: ``ss`` spells states its own way.
SS_STATES = {
    "ESTAB": TcpState.ESTABLISHED, "SYN-SENT": TcpState.SYN_SENT, "SYN-RECV": TcpState.SYN_RECV,
    "FIN-WAIT-1": TcpState.FIN_WAIT1, "FIN-WAIT-2": TcpState.FIN_WAIT2,
    "TIME-WAIT": TcpState.TIME_WAIT, "CLOSE-WAIT": TcpState.CLOSE_WAIT,
    "LAST-ACK": TcpState.LAST_ACK, "LISTEN": TcpState.LISTEN, "CLOSING": TcpState.CLOSING,
    "UNCONN": TcpState.CLOSED,
}


def ss_counts(output: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for line in output.splitlines()[1:]:
        if line.strip():
            counts[SS_STATES[line.split()[0]].value] += 1
    return dict(counts)


def nonzero(states: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in states.items() if v}


def settled(port: int, wanted: dict[str, int], timeout: float = 5.0) -> None:
    """Poll the kernel until ``port``'s sockets are in ``wanted`` states (FINs are processed
    just after close() returns); on the deadline, let the test's assertions show the rest."""
    deadline = time.monotonic() + timeout
    with DiagObserver() as observer:
        while dict(Counter(r.state.value for r in observer.snapshot(port=port))) != wanted:
            if time.monotonic() > deadline:
                return
            time.sleep(0.002)


def tcplab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", "watch", *args], capture_output=True,
                          text=True, timeout=60, check=False)


# A child that unshares into a private namespace, opens a busy mix, and reads it both ways.
BUSY_NETNS = textwrap.dedent('''
    import json, socket, subprocess, sys
    from tcplab.kernel.netns import enter_private_netns
    enter_private_netns()
    listeners = [socket.create_server(("127.0.0.1", 0), backlog=512) for _ in range(3)]
    keep = []
    def pair(i):
        lsock = listeners[i % 3]
        client = socket.create_connection(lsock.getsockname())
        server, _ = lsock.accept()
        return client, server
    for i in range(120):  # TIME_WAIT on the client
        c, s = pair(i); c.close(); s.recv(1); s.close()
    for i in range(80):  # ESTABLISHED pairs
        keep += pair(i)
    for i in range(50):  # CLOSE_WAIT (leaked server end) and FIN_WAIT2 (orphan client)
        c, s = pair(i); c.close(); keep.append(s)
    for i in range(10):  # connections queued, never accepted: ESTABLISHED, no owner yet
        keep.append(socket.create_connection(listeners[0].getsockname()))
    # Loopback FINs are processed in softirq context just after close() returns: poll the
    # kernel until every state is in place (5 s deadline) instead of sleeping and hoping.
    import time
    from collections import Counter
    from tcplab.kernel.observer import DiagObserver
    wanted = {"LISTEN": 3, "ESTABLISHED": 180, "CLOSE_WAIT": 50, "FIN_WAIT2": 50, "TIME_WAIT": 120}
    deadline = time.monotonic() + 5
    with DiagObserver() as observer:
        while dict(Counter(r.state.value for r in observer.snapshot())) != wanted:
            if time.monotonic() > deadline:
                break  # the assertions below show what the kernel holds
            time.sleep(0.002)
    watch = subprocess.run([sys.executable, "-m", "tcplab", "watch", "--once", "--json"],
                           capture_output=True, text=True, check=True).stdout
    ss = subprocess.run([sys.argv[1], "-tan"], capture_output=True, text=True, check=True).stdout
    print(json.dumps({"watch": json.loads(watch), "ss": ss, "pid": __import__("os").getpid()}))
''')


@needs_ss
@pytest.mark.skipif(not REQUIREMENTS["root"][0](), reason="needs root for a private namespace")
def test_watch_agrees_with_ss_in_a_busy_private_namespace() -> None:
    assert SS is not None
    done = subprocess.run([sys.executable, "-c", BUSY_NETNS, SS], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    watch, expected = data["watch"], ss_counts(data["ss"])
    assert nonzero(watch["states"]) == expected
    assert expected == {"LISTEN": 3, "ESTABLISHED": 180, "CLOSE_WAIT": 50, "FIN_WAIT2": 50,
                        "TIME_WAIT": 120}
    # owners: the child holds the listeners, both ends of 80 pairs, 50 CLOSE_WAIT, 10 clients;
    # nobody holds the TIME_WAITs, the FIN_WAIT2 orphans or the 10 unaccepted server ends.
    mine = next(o for o in watch["owners"] if o["pid"] == data["pid"])
    assert mine["states"] == {"LISTEN": 3, "ESTABLISHED": 170, "CLOSE_WAIT": 50}
    assert watch["no_owner"]["states"] == {"FIN_WAIT2": 50, "TIME_WAIT": 120, "ESTABLISHED": 10}


@pytest.fixture
def busy_port() -> Iterator[tuple[int, list[socket.socket]]]:
    """A listener on the host's loopback with sockets of its port in five states."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    keep = [listener]
    port = listener.getsockname()[1]

    def pair() -> tuple[socket.socket, socket.socket]:
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        return client, server

    for _ in range(30):
        client, server = pair()
        client.close()
        server.recv(1)
        server.close()
    for _ in range(20):
        keep += pair()
    for _ in range(15):
        client, server = pair()
        client.close()
        keep.append(server)
    settled(port, {"LISTEN": 1, "ESTABLISHED": 40, "CLOSE_WAIT": 15, "FIN_WAIT2": 15,
                   "TIME_WAIT": 30})
    try:
        yield port, keep
    finally:
        for sock in keep:
            sock.close()


@needs_ss
def test_watch_agrees_with_ss_on_the_tests_own_port(busy_port: tuple[int, list[socket.socket]]) -> None:
    assert SS is not None
    port, _ = busy_port
    done = tcplab("--once", "--json", "--port", str(port))
    assert done.returncode == 0, done.stderr
    snapshot = json.loads(done.stdout)
    ss = subprocess.run([SS, "-tan", f"( sport = :{port} or dport = :{port} )"],
                        capture_output=True, text=True, check=True).stdout
    assert nonzero(snapshot["states"]) == ss_counts(ss) == {
        "LISTEN": 1, "ESTABLISHED": 40, "CLOSE_WAIT": 15, "FIN_WAIT2": 15, "TIME_WAIT": 30}
    assert snapshot["filter"] == {"port": port, "pid": None, "states": None}
    mine = next(o for o in snapshot["owners"] if o["pid"] == os.getpid())
    assert mine["states"] == {"LISTEN": 1, "ESTABLISHED": 40, "CLOSE_WAIT": 15}
    assert "pytest" in mine["command"]


def test_pid_and_state_filters(busy_port: tuple[int, list[socket.socket]]) -> None:
    port, _ = busy_port
    done = tcplab("--once", "--json", "--port", str(port), "--pid", str(os.getpid()),
                  "--state", "close-wait,established")
    snapshot = json.loads(done.stdout)
    assert snapshot["states"] == {"ESTABLISHED": 40, "CLOSE_WAIT": 15}
    assert snapshot["no_owner"]["total"] == 0
    text = tcplab("--once", "--port", str(port), "--state", "CLOSE_WAIT").stdout
    assert "CLOSE_WAIT" in text and str(os.getpid()) in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--port", "70000"), "--port 70000 is not a TCP port"),
        (("--port", "0"), "--port 0 is not a TCP port"),
        (("--pid", "999999999"), "--pid 999999999: no such process"),
        (("--state", "closewaiting"), "unknown TCP state 'closewaiting'"),
        (("--interval", "0"), "too short"),
        (("--port", "http"), "invalid int value"),
    ],
)
def test_bad_filters_are_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    done = tcplab("--once", *args)
    assert done.returncode == 2
    assert needle in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_refreshes_are_plain_repeated_blocks_when_not_a_tty() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "watch", "--interval", "0.2"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        blocks = 0
        while blocks < 2:
            line = proc.stdout.readline()
            assert line, "watch exited early"
            blocks += line.startswith("tcplab watch ")
            assert "\x1b[" not in line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_close_wait_growth_is_marked_between_refreshes(
    busy_port: tuple[int, list[socket.socket]],
) -> None:
    from tcplab import watch

    port, keep = busy_port
    where = watch.WatchFilter(port=port)
    with DiagObserver() as observer:
        first = watch.take(observer, where)
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = keep[0].accept()
        keep.append(server)
        client.close()
        deadline = time.monotonic() + 5
        while True:  # until the FIN is processed: the kernel's, not ours, to say
            second = watch.take(observer, where)
            if second.states[TcpState.CLOSE_WAIT] == 16 or time.monotonic() > deadline:
                break
            time.sleep(0.002)
    assert second.close_wait_growth(first) == 1
    assert second.to_json(first)["close_wait_growth"] == 1
    text = watch.render(second, first)
    assert "CLOSE_WAIT grew by 1 since the last refresh" in text
    assert re.search(rf"{os.getpid()}\s+.*\b16 \(\+1\)", text), text
    assert watch.render(first, None).count("grew") == 0


def test_ctrl_c_ends_watch_with_130() -> None:
    """Ctrl-C is how a person stops watching; it is still an interrupt, exit 130 (README)."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "tcplab", "watch", "--interval", "0.2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # Python raises KeyboardInterrupt only if SIGINT was not ignored
                            # when it started (a shell's background job ignores it).
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("tcplab watch "), "watch printed nothing"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr


# -- FdMemory: owners reused between refreshes only while provably unchanged -------------

HOLDER = textwrap.dedent('''
    import os, socket, sys
    keep = [socket.socket() for _ in range(3)]
    def report():
        print(" ".join(f"{s.fileno()}:{os.fstat(s.fileno()).st_ino}" for s in keep), flush=True)
    report()
    for line in sys.stdin:  # asleep in read() between commands: its CPU time stands still
        if line.strip() == "swap":  # close the middle socket; a new one takes its number
            number = keep[1].fileno()
            keep[1].close()
            keep[1] = socket.socket()
            assert keep[1].fileno() == number
        report()
''')


class Holder:
    """A process holding three TCP sockets, which swaps one for another on the same fd
    number when told (``swap``) and says which (fd, inode) it holds."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.held = self._read()

    def _read(self) -> dict[int, int]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        return {int(fd): int(inode) for fd, inode in (pair.split(":") for pair in line.split())}

    def swap(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("swap\n")
        self.proc.stdin.flush()
        self.held = self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def holder() -> Iterator[Holder]:
    proc = Holder()
    yield proc
    proc.close()


def held_by(found: dict[int, list[tuple[int, int]]], pid: int) -> dict[int, int]:
    """fd -> inode of ``pid``'s sockets in a ``socket_fds`` answer."""
    return {fd: inode for inode, pairs in found.items() for p, fd in pairs if p == pid}


def remembered(memory: FdMemory, pid: int) -> dict[int, list[tuple[int, int]]]:
    """Read ``pid``'s fds through ``memory`` until they come from it: a process that just
    wrote to us still runs a little before it sleeps in read() (then it is read again)."""
    for _ in range(50):
        found = memory.socket_fds([pid], since=time.monotonic())
        if memory.reused == 1:
            assert memory.scanned == 0
            return found
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never stood still")


def test_memory_reuses_a_sleeping_process_and_rereads_it_after_a_swap(holder: Holder) -> None:
    """The cache that must be invalidated: the holder closes an fd and a new socket takes its
    number. Its CPU time moved, so its fds are read again and the new inode is found at the
    old number (the old inode nowhere); while it sleeps, its fds come from memory."""
    pid = holder.proc.pid
    with FdMemory() as memory:
        first = memory.socket_fds([pid], since=time.monotonic())
        assert memory.scanned == 1 and held_by(first, pid) == holder.held
        again = remembered(memory, pid)
        assert again == first
        old = dict(holder.held)
        holder.swap()
        (fd,) = [fd for fd in old if old[fd] != holder.held[fd]]
        after = memory.socket_fds([pid], since=time.monotonic())
        assert (memory.reused, memory.scanned) == (0, 1)
        assert held_by(after, pid) == holder.held and old[fd] not in after
        assert after == socket_fds([pid])  # what a plain scan reads
        # an inode filter applies to what memory gives, as to a scan
        wanted = {holder.held[fd]}
        assert memory.socket_fds([pid], wanted, since=time.monotonic()) == {holder.held[fd]: [(pid, fd)]}
        assert memory.reused == 1


def test_memory_forgets_a_process_that_exited(holder: Holder) -> None:
    pid = holder.proc.pid
    with FdMemory() as memory:
        remembered(memory, pid)
        holder.close()
        assert memory.socket_fds([pid], since=time.monotonic()) == {}
        assert memory.reused == 0 and not memory._known


def test_memory_waits_a_tick_after_the_census(holder: Holder) -> None:
    """A thread running when the census ended is accounted by the next tick at the latest:
    the CPU times are compared no earlier than that."""
    tick = tick_seconds()
    if tick is None:
        pytest.skip("nohz_full CPUs: FdMemory reuses nothing")
    with FdMemory() as memory:
        remembered(memory, holder.proc.pid)
        since = time.monotonic()
        memory.socket_fds([holder.proc.pid], since=since)
        assert time.monotonic() - since >= 1.5 * tick and memory.reused == 1


def test_memory_reuses_nothing_without_a_periodic_tick(
    holder: Holder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(procfs, "tick_seconds", lambda: None)
    with FdMemory() as memory:
        for _ in range(2):
            found = memory.socket_fds([holder.proc.pid], since=time.monotonic())
            assert memory.scanned == 1 and memory.reused == 0
            assert held_by(found, holder.proc.pid) == holder.held


def test_take_with_memory_counts_what_take_without_it_counts(
    busy_port: tuple[int, list[socket.socket]], holder: Holder
) -> None:
    port, _socks = busy_port
    watch_filter = watch.WatchFilter(port=port)
    with DiagObserver() as observer, FdMemory() as memory:
        plain = watch.take(observer, watch_filter)
        for _ in range(2):
            remembered = watch.take(observer, watch_filter, memory=memory)
            assert remembered.states == plain.states and remembered.owners == plain.owners
            assert remembered.no_owner == plain.no_owner
        assert memory.reused > 0


def test_holders_name_every_process_holding_a_socket(holder: Holder) -> None:
    """A socket in several processes (after fork) is listed under each, once; the bulk
    view (``holders``) and the pairs (``socket_fds``) come from one reading."""
    with socket.socket() as mine:
        child = os.fork()
        if child == 0:  # holds ``mine`` too, until killed
            try:
                time.sleep(60)
            finally:
                os._exit(0)
        try:
            inode = os.fstat(mine.fileno()).st_ino
            pids = [os.getpid(), child, holder.proc.pid]
            with FdMemory() as memory:
                for _ in range(2):  # read, then (the child and holder asleep) remembered
                    found = memory.holders(pids, since=time.monotonic())
                    assert sorted(found.of(inode)) == sorted([os.getpid(), child])
                    for fd, held in holder.held.items():
                        assert found.of(held) == [holder.proc.pid]
                        assert socket_fds([holder.proc.pid])[held] == [(holder.proc.pid, fd)]
                    assert found.of(-1) == []
        finally:
            os.kill(child, 9)
            os.waitpid(child, 0)

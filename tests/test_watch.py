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

from tcplab.kernel.observer import DiagObserver
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

"""No tracefs instance outlives a scenario run, however the run ends.

Each test runs a small scenario script as its own process (as ``tcplab run`` does) and
then looks at ``/sys/kernel/tracing/instances``: success, an expectation failure, a
timeout, Ctrl-C and SIGTERM must all leave nothing; after a SIGKILL (no cleanup possible)
the next recorder sweeps the dead process's instance. Skipped without root and tracefs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tcplab.kernel import trace
from tcplab.states import TcpState

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or trace.available() is not None,
                       reason=f"needs root and tracefs ({trace.available()})"),
]

SRC = Path(__file__).resolve().parents[1] / "src"

HEADER = '''
import trio
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import reaches
scenario = Scenario(id="cleanup-probe", title="probe", claims=(), timeout={timeout})

@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    conn = await lab.connect()
{body}

if __name__ == "__main__":
    scenario.main()
'''


def _script(tmp_path: Path, body: str, timeout: float = 10.0) -> Path:
    path = tmp_path / "probe.py"
    indented = "\n".join("    " + line for line in body.strip().splitlines())
    path.write_text(HEADER.format(body=indented, timeout=timeout))
    return path


_STARTED: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    """Whatever a test asserted, no probe it started outlives it, nor its tracefs instance."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if _mine(proc.pid):
            with trace.TransitionRecorder():  # sweeps the instances of dead processes
                pass


def _start(script: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, str(script), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _STARTED.append(proc)
    return proc


def _mine(pid: int) -> list[str]:
    return [n for n in trace.instances() if n.startswith(f"{trace.PREFIX}{pid}-")]


def _wait_for_instance(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not _mine(proc.pid):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the scenario never created its tracefs instance"
        time.sleep(0.02)


def _finish(proc: subprocess.Popen[bytes]) -> int:
    proc.wait(timeout=20)
    return proc.returncode


@pytest.mark.parametrize(("body", "code"), [
    ('verdicts.note("ok", True)', 0),
    ('await reaches(conn.client, TcpState.CLOSE_WAIT, timeout=0.2)', 1),  # expectation fails
    ('raise RuntimeError("a crash")', 1),
])
def test_ending_normally_or_failing_leaves_no_instance(tmp_path: Path, body: str, code: int) -> None:
    proc = _start(_script(tmp_path, body))
    assert _finish(proc) == code
    assert _mine(proc.pid) == []


def test_timeout_leaves_no_instance(tmp_path: Path) -> None:
    proc = _start(_script(tmp_path, "await trio.sleep_forever()", timeout=0.5))
    assert _finish(proc) == 1
    assert _mine(proc.pid) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_no_instance(tmp_path: Path, sig: signal.Signals) -> None:
    proc = _start(_script(tmp_path, "await trio.sleep_forever()"))
    _wait_for_instance(proc)
    proc.send_signal(sig)
    assert _finish(proc) == 130
    assert _mine(proc.pid) == []


def test_killed_run_is_swept_by_the_next(tmp_path: Path) -> None:
    proc = _start(_script(tmp_path, "await trio.sleep_forever()"))
    _wait_for_instance(proc)
    proc.kill()
    proc.wait(timeout=10)
    assert _mine(proc.pid), "SIGKILL allows no cleanup: the instance should still be there"
    with trace.TransitionRecorder():
        pass
    assert _mine(proc.pid) == []


def test_concurrent_recorders_see_only_their_own_ports() -> None:
    """Two instances at once, each filtered in the kernel to its own listener's port."""
    with trace.TransitionRecorder() as one, trace.TransitionRecorder() as two:
        listeners = []
        for recorder in (one, two):
            ls = socket.socket()
            ls.bind(("127.0.0.1", 0))
            recorder.watch_port(ls.getsockname()[1])
            ls.listen()
            listeners.append(ls)
        for ls in listeners:
            with socket.create_connection(ls.getsockname()) as c:
                ls.accept()[0].close()
                c.close()
        for recorder, ls in zip((one, two), listeners, strict=True):
            port = ls.getsockname()[1]
            # Polled, not slept for: until both ends' last transition (to CLOSE, TIME_WAIT
            # included) is in, so that every event of the connection is checked below.
            events = recorder.read()
            deadline = time.monotonic() + 5
            while sum(e.new is TcpState.CLOSED for e in events) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
                events += recorder.read()
            assert events, "no event traced"
            assert all(port in (e.sport, e.dport) for e in events), events
            ls.close()
    assert not [n for n in trace.instances() if n.startswith(f"{trace.PREFIX}{os.getpid()}-")]


def _instances_of_children(pid: int) -> set[str]:
    """The tcplab tracefs instances of ``pid``'s descendants (named after their pid)."""
    try:
        pids = {str(p.pid) for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()
    return {n for n in trace.instances() if n.removeprefix(trace.PREFIX).split("-", 1)[0] in pids}


def test_ctrl_c_on_the_runner_leaves_no_instance(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole process group: the runner and every scenario."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    runner = subprocess.Popen([sys.executable, "-m", "tcplab", "run", "close-wait-leak",
                               "graceful-close", "--results", str(tmp_path)],
                              cwd=SRC.parent, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _STARTED.append(runner)  # reaped with its group if a check fails
    # Only the runner's own scenarios' instances: on a shared host other runs make theirs.
    deadline = time.monotonic() + 15
    while not (started := _instances_of_children(runner.pid)):
        assert runner.poll() is None and time.monotonic() < deadline, "no scenario started"
        time.sleep(0.02)
    os.killpg(runner.pid, signal.SIGINT)
    assert runner.wait(timeout=30) == 130
    assert not started & set(trace.instances())

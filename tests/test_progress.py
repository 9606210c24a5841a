"""Live progress of ``tcplab run``: the two displays on a fake clock, then the real command
in a log (a pipe) and on a terminal (a pty)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from tcplab.progress import HEARTBEAT, LogProgress, TerminalProgress, for_stream
from tcplab.scenario import Scenario, ScenarioResult
from tcplab.table import plural

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scenario(sid: str) -> Scenario:
    return Scenario(id=sid, title=sid, claims=())


def result(sid: str, status: str = "passed", reason: str = "", duration: float = 1.5) -> ScenarioResult:
    return ScenarioResult(sid, sid, (), status, reason=reason, duration=duration)  # type: ignore[arg-type]


def test_log_lines_start_heartbeat_and_end() -> None:
    clock, out = Clock(), io.StringIO()
    log = LogProgress(2, out, clock=clock)
    log.started(0, scenario("slow-one"))
    log.started(1, scenario("quick-one"))
    clock.now += 1
    log.finished(1, 1, 2, result("quick-one", "skipped", "needs root\nmore"))
    clock.now += HEARTBEAT - 2
    log.tick()  # 9 s: no run has gone 10 s yet
    clock.now += 1
    log.tick()
    clock.now += HEARTBEAT / 2
    log.tick()  # 15 s: the last heartbeat was 5 s ago
    clock.now += HEARTBEAT / 2
    log.tick()
    log.finished(0, 2, 2, result("slow-one", duration=20.0))
    log.close()
    assert out.getvalue().splitlines() == [
        "[0/2] start slow-one",
        "[0/2] start quick-one",
        "[1/2] skip  quick-one (1.50 s): needs root",
        "[1/2] still running after 10 s: slow-one 10 s",
        "[1/2] still running after 20 s: slow-one 20 s",
        "[2/2] ok    slow-one (20.00 s)",
    ]
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_repeats_are_numbered_so_starts_pair_with_ends() -> None:
    out = io.StringIO()
    log = LogProgress(2, out, repeat=2, clock=Clock())
    log.started(0, scenario("a"))
    log.started(1, scenario("a"))
    log.finished(1, 1, 2, result("a", "failed", "boom"))
    assert out.getvalue().splitlines() == ["[0/2] start a #1", "[0/2] start a #2",
                                           "[1/2] FAIL  a #2 (1.50 s): boom"]


def test_terminal_status_is_redrawn_in_place_and_erased_at_the_end() -> None:
    clock, out = Clock(), io.StringIO()
    tty = TerminalProgress(3, out, clock=clock, width=200)
    tty.started(0, scenario("close-wait-timeout"))
    clock.now += 2
    tty.started(1, scenario("half-close"))
    clock.now += 4.4
    tty.tick()
    assert out.getvalue().endswith(
        "\r\x1b[K0/3 done, 6 s | running: close-wait-timeout 6s, half-close 4s")
    tty.finished(1, 1, 3, result("half-close"))
    assert out.getvalue().endswith("\r\x1b[K[1/3] ok    half-close (1.50 s)\n"
                                   "\r\x1b[K1/3 done, 6 s | running: close-wait-timeout 6s")
    tty.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_terminal_status_fits_the_width() -> None:
    clock = Clock()
    tty = TerminalProgress(9, io.StringIO(), clock=clock, width=60)
    for i in range(9):
        tty.started(i, scenario(f"scenario-number-{i}"))
    status = tty.status()
    assert len(status) <= 59 and status.endswith(" more"), status
    assert "+8 more" in status or "+7 more" in status


def test_display_follows_the_stream() -> None:
    assert isinstance(for_stream(1, stream=io.StringIO()), LogProgress)
    assert [plural(1, "run"), plural(2, "run"), plural(0, "socket")] == ["1 run", "2 runs", "0 sockets"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TERM": "xterm"}


def test_a_log_gets_whole_lines(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tcplab", "run", "half-close", "--results",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False, env=_env())
    assert done.returncode == 0, done.stderr
    source, *lines = done.stderr.splitlines()
    assert source.startswith("tcplab: scenarios from ")
    assert lines[0] == "[0/1] start half-close"
    assert lines[1].startswith("[1/1] ok    half-close (")
    assert "\x1b" not in done.stderr and "\r" not in done.stderr
    assert "\n1 run in " in done.stdout


def test_a_terminal_gets_a_status_line(tmp_path: Path) -> None:
    """stderr on a pty: the status line names the run going and is erased before the table."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "tcplab", "run", "half-close",
                                 "--results", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=slave, env=_env())
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            seen += chunk
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert proc.returncode == 0, seen
    text = seen.decode()
    assert "\r\x1b[K0/1 done, 0 s | running: half-close 0s" in text
    assert "\r\x1b[K[1/1] ok    half-close (" in text
    last = text.rsplit("\r\x1b[K", 2)
    assert last[1].startswith("1/1 done, ") and last[2] == ""  # the last status, then erased
    assert b"1 run in " in stdout

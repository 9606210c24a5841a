"""No network namespace outlives the run that made it: after success, failure or Ctrl-C.

A scenario's namespace is anonymous: the kernel frees it as soon as no process is in it,
no fd refers to it and nothing bind-mounts it. So the test takes the namespace's id while
(or after) the scenario runs and checks, afterwards, that nothing on the machine holds it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="private network namespaces need root")

SCENARIO = """
from tcplab import Scenario, TcpState
from tcplab.expect import holds, reaches
scenario = Scenario(id="{id}", title="a namespaced run that {how}", claims=(),
                    sysctls={{"net.ipv4.tcp_fin_timeout": 9}}, timeout=120)
@scenario.body
async def run(lab, verdicts):
    conn = await lab.connect()
    {body}
if __name__ == "__main__":
    scenario.main()
"""
BODIES = {
    "passes": "await holds(conn.server, TcpState.ESTABLISHED, for_=0.1)",
    "fails": "await reaches(conn.server, TcpState.TIME_WAIT, timeout=0.2)",
    "holds": "await holds(conn.server, TcpState.ESTABLISHED, for_=100)",
}


def write(directory: Path, *names: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name in names:
        text = SCENARIO.format(id=name, how=name, body=BODIES[name])
        (directory / f"{name}.py").write_text(text)
    return directory


def holders(namespace: str) -> list[str]:
    """Every process, fd or mount on this machine that still refers to ``namespace``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/ns/net") == namespace:
                found.append(f"pid {pid}")
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == namespace:
                    found.append(f"pid {pid} fd {fd}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    inode = namespace.removeprefix("net:[").removesuffix("]")
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [line for line in mounts.splitlines() if "nsfs" in line and f"net:[{inode}]" in line]
    return found


def tcplab(*args: str, new_session: bool = False) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "tcplab", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=new_session)


def test_no_namespace_outlives_a_passing_or_failing_run(tmp_path: Path) -> None:
    scenarios = write(tmp_path / "scenarios", "passes", "fails")
    runner = tcplab("run", "--scenarios", str(scenarios), "--results", str(tmp_path / "out"))
    runner.communicate(timeout=120)
    assert runner.returncode == 1  # one scenario fails on purpose
    (path,) = (tmp_path / "out").glob("*/results.json")
    runs = {r["id"]: r for r in json.loads(path.read_text())["scenarios"]}
    assert runs["passes"]["status"] == "passed" and runs["fails"]["status"] == "failed"
    for run in runs.values():
        match = re.search(r"net:\[\d+\]", run["mode"])
        assert match, run["mode"]
        assert match.group(0) != os.readlink("/proc/self/ns/net")
        assert holders(match.group(0)) == []


def test_no_namespace_outlives_ctrl_c(tmp_path: Path) -> None:
    scenarios = write(tmp_path / "scenarios", "holds")
    runner = tcplab("run", "--scenarios", str(scenarios), "--results", str(tmp_path / "out"),
                    new_session=True)
    host = os.readlink("/proc/self/ns/net")
    namespace = ""
    deadline = time.monotonic() + 30
    try:
        while not namespace:  # the scenario's child, once it has left the host's namespace
            assert runner.poll() is None and time.monotonic() < deadline, "no namespace appeared"
            for child in psutil.Process(runner.pid).children():
                try:
                    held = os.readlink(f"/proc/{child.pid}/ns/net")
                except OSError:
                    continue
                if held != host:
                    namespace = held
            time.sleep(0.02)
        assert holders(namespace), "the running scenario should hold its namespace"
        os.killpg(runner.pid, signal.SIGINT)
        runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 130
    deadline = time.monotonic() + 5
    while holders(namespace) and time.monotonic() < deadline:  # exits are asynchronous
        time.sleep(0.02)
    assert holders(namespace) == []

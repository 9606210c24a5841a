"""A scenario that needs root is skipped with its reason when not root, never failed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

NAMESPACED = """
from tcplab import Scenario
scenario = Scenario(id="needs-netns", title="sets a sysctl", claims=(),
                    sysctls={"net.ipv4.tcp_fin_timeout": 7})
@scenario.body
async def run(lab, verdicts):
    from tcplab.kernel import sysctl
    value = sysctl.read_int("net.ipv4.tcp_fin_timeout")
    assert value == 7, f"fin_timeout in the namespace: {value}"
if __name__ == "__main__":
    scenario.main()
"""


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "scenarios"
    directory.mkdir()
    (directory / "needs_netns.py").write_text(NAMESPACED)
    return directory


def _run(scenario_dir: Path, results: Path, *, drop: str = "") -> subprocess.CompletedProcess[str]:
    """``tcplab run``, optionally as root without some capabilities (as in a container)."""
    argv = [sys.executable, "-m", "tcplab", "run", "--scenarios", str(scenario_dir), "--results", str(results)]
    if drop:
        argv = ["setpriv", f"--inh-caps=-{drop}", f"--bounding-set=-{drop}", *argv]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, env=env)


needs_setpriv = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                   reason="needs root and setpriv to drop capabilities")


@needs_setpriv
def test_skipped_with_reason_without_cap_sys_admin(scenario_dir: Path, tmp_path: Path) -> None:
    done = _run(scenario_dir, tmp_path / "out", drop="sys_admin")
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "out").glob("*/results.json")
    (run,) = json.loads(path.read_text())["scenarios"]
    assert run["status"] == "skipped" and "CAP_SYS_ADMIN" in run["reason"]
    assert "skip" in done.stderr and "1 run in" in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private network namespace")
def test_sysctl_is_set_in_a_private_namespace_only(scenario_dir: Path, tmp_path: Path) -> None:
    host = Path("/proc/sys/net/ipv4/tcp_fin_timeout").read_text()
    done = _run(scenario_dir, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "out").glob("*/results.json")
    (run,) = json.loads(path.read_text())["scenarios"]
    assert run["status"] == "passed" and run["mode"].startswith("private netns net:[")
    assert run["sysctls"]["net.ipv4.tcp_fin_timeout"] == "7"
    assert Path("/proc/sys/net/ipv4/tcp_fin_timeout").read_text() == host


@needs_setpriv
def test_unwritable_results_dir_is_one_line(scenario_dir: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    done = _run(scenario_dir, locked / "out", drop="dac_override,-dac_read_search")
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "permission denied" in lines[-1] and "Traceback" not in done.stderr

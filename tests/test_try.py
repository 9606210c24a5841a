"""``tcplab try``: settings parsed and refused as documented, each key reported (measured or
"not measured"), figures measured with the tried value and the default, the host untouched.

The fin_timeout test waits out a default FIN_WAIT2 (60 s) and TIME_WAIT: it is marked slow
(``-m "not slow"`` leaves it out); the others take a few seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tcplab import trying
from tcplab.errors import UsageError
from test_host_sysctls import snapshot

ROOT = Path(__file__).resolve().parents[1]


def tcplab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "tcplab", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_sysctl_conf_lines_parse_like_sysctl_p(tmp_path: Path) -> None:
    conf = tmp_path / "sysctl.conf"
    conf.write_text("# a blog's advice\n; old style comment\n\nnet.ipv4.tcp_fin_timeout = 10\n"
                    "net/ipv4/tcp_keepalive_time=600\n-net.core.somaxconn =  1024 \n"
                    "net.ipv4.ip_local_port_range = 1024\t65535\nnet.ipv4.tcp_fin_timeout=15\n")
    assert trying.parse([str(conf), "net.ipv4.tcp_keepalive_probes=3"]) == {
        "net.ipv4.tcp_fin_timeout": "15", "net.ipv4.tcp_keepalive_time": "600",
        "net.core.somaxconn": "1024", "net.ipv4.ip_local_port_range": "1024 65535",
        "net.ipv4.tcp_keepalive_probes": "3"}


@pytest.mark.parametrize(("line", "needle"), [
    ("kernel.pid_max = 5", "kernel.pid_max is not a net.* setting"),
    ("vm.swappiness=10", "vm.swappiness is not a net.* setting"),
    ("net.ipv4.tcp_fin_timeout", "not a `key = value` line"),
    ("net.ipv4.tcp_fin_timeout =", "not a `key = value` line"),
    ("= 10", "not a `key = value` line"),
])
def test_malformed_or_foreign_lines_are_refused(line: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle.replace("*", r"\*")):
        trying.parse_line(line, "f:1")


@pytest.mark.parametrize("args", [("kernel.pid_max=5",), ("nosuchfile",), ("--quick",)])
def test_refusals_are_one_line_and_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    done = tcplab("try", *args)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_non_net_key_in_a_file_is_refused_with_its_line(tmp_path: Path) -> None:
    conf = tmp_path / "mixed.conf"
    conf.write_text("net.ipv4.tcp_fin_timeout = 10\n# fine\nfs.file-max = 100000\n")
    done = tcplab("try", str(conf))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"tcplab: {conf}:3: fs.file-max is not a net.* setting; "
                                   "tcplab try applies only per-namespace net.* sysctls")


def test_every_measured_key_has_a_figure_and_a_scenario() -> None:
    """The table is explicit: each key of a measure is reported by one of its figures, and
    names a scenario that exists (its claims are the ones it judges)."""
    scenarios = {p.stem.replace("_", "-") for p in (ROOT / "scenarios").glob("[!_]*.py")}
    for measure in trying.MEASURES:
        assert measure.keys and measure.scenario in scenarios, measure
        assert set(measure.waits_on) <= set(measure.keys)


@pytest.mark.parametrize(("tried", "default", "waited", "changed"), [
    (10.0, 60.0, (70, 70), True), (60.1, 59.9, (70, 70), False), (10.0, None, (70, 120), True),
    (None, None, (120, 120), None), (None, 60.0, (30, 70), False),
])
def test_what_counts_as_changed(tried: float | None, default: float | None,
                                waited: tuple[float, float], changed: bool | None) -> None:
    assert trying.differs(tried, default, waited) is changed


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="tcplab try needs root (namespaces)")
def test_a_key_missing_in_a_fresh_namespace_is_refused() -> None:
    done = tcplab("try", "--quick", "net.ipv4.tcp_no_such_thing=1")
    assert done.returncode == 2
    assert done.stderr.strip().startswith(
        "tcplab: net.ipv4.tcp_no_such_thing: no such sysctl in a fresh network namespace")


def _by_key(stdout: str) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for item in json.loads(stdout)["settings"]}


def _figures(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["figure"]: f for f in item["figures"]}


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="tcplab try needs root (namespaces)")
def test_a_file_of_several_keys_reports_each_and_leaves_the_host_alone(tmp_path: Path) -> None:
    conf = tmp_path / "blog.conf"
    conf.write_text("# tuned\nnet.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_fin_timeout=10\n"
                    "net.core.somaxconn = 1024\n")
    before = snapshot()
    done = tcplab("try", "--quick", "--json", str(conf))
    after = snapshot()
    assert done.returncode == 0, done.stderr
    assert {p for p in before if after.get(p) != before[p]} == set(), "host sysctls changed"
    items = _by_key(done.stdout)
    assert list(items) == ["net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                           "net.core.somaxconn"]
    first = _figures(items["net.ipv4.tcp_keepalive_time"])["first_probe_s"]
    assert first["changed"] and abs(first["tried"] - 600) < 2 and abs(first["default"] - 7200) < 2
    fin = _figures(items["net.ipv4.tcp_fin_timeout"])
    assert fin["fin_wait2_timer_s"]["changed"] and fin["time_wait_timer_s"]["changed"] is False
    assert fin["fin_wait2_life_s"]["tried_shown"] == "not waited"  # --quick
    somaxconn = items["net.core.somaxconn"]
    assert not somaxconn["measured"] and somaxconn["default"] == "4096"
    text = tcplab("try", "--quick", str(conf))
    assert text.returncode == 0
    assert "net.core.somaxconn = 1024  (namespace default 4096)\n  not measured:" in text.stdout
    assert "TIME_WAIT's timer still starts at 60.0 s" in text.stdout


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="tcplab try needs root (namespaces)")
def test_fin_timeout_10_measures_fin_wait2_and_time_wait_lifetimes() -> None:
    """~65 s: the default run waits out a 60 s FIN_WAIT2 and a 60 s TIME_WAIT."""
    before = snapshot()
    done = tcplab("try", "--json", "net.ipv4.tcp_fin_timeout=10", timeout=200)
    assert {p for p, v in snapshot().items() if before.get(p) != v} == set()
    assert done.returncode == 0, done.stderr
    assert "about 6" in done.stderr  # the duration is announced before the run
    fin = _figures(_by_key(done.stdout)["net.ipv4.tcp_fin_timeout"])
    life = fin["fin_wait2_life_s"]
    assert life["changed"] and 9 <= life["tried"] <= 13 and 59 <= life["default"] <= 66
    time_wait = fin["time_wait_life_s"]
    assert time_wait["changed"] is False and 59 <= time_wait["tried"] <= 66
    assert "TIME_WAIT still lasts" in _by_key(done.stdout)["net.ipv4.tcp_fin_timeout"]["says"]

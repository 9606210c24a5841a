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

from tcplab import catalog, trying
from tcplab.errors import UsageError
from tcplab.scenario import Scenario, overridden
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


def test_scenarios_are_found_by_the_keys_they_measure() -> None:
    """No table: a scenario declares the keys it reads at run time (``Scenario.measures``)."""
    known = catalog.discover(str(ROOT / "scenarios"))
    found = {s.id for s in trying.scenarios_for(known.values(), [
        "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.core.somaxconn"])}
    assert found == {"fin-wait2-timeout", "keepalive-sysctls", "somaxconn"}
    for scenario in known.values():
        assert all(k.startswith("net.") for k in scenario.measures), scenario.id


def test_a_tried_run_merges_over_the_scenario_and_a_default_run_drops_its_own() -> None:
    scenario = Scenario("x", "x", (), sysctls={"net.a": 3, "net.b": 1}, timeout=20)
    tried = overridden(scenario, {"net.a": "10", "net.c": "5"}, 100)
    assert tried.sysctls == {"net.a": "10", "net.b": 1, "net.c": "5"} and tried.needs_netns
    assert tried.timeout == 220
    assert overridden(scenario, {"net.a": None}, 0).sysctls == {"net.b": 1}


def _result(evidence: dict[str, Any], notes: dict[str, Any]) -> dict[str, Any]:
    return {"verdicts": [{"claim": c, "evidence": e} for c, e in evidence.items()],
            "evidence": notes}


def test_what_changed_is_read_from_the_verdicts_evidence() -> None:
    lifetimes = {"fin_timeout_s": 10, "orphan_lifetime_s": 10.2, "half_after": "FIN_WAIT2"}
    tried = _result({"C25": lifetimes, "C26": lifetimes, "C27": {"timers_s": [60.0]}},
                    {"traceback": "x"})
    default = _result({"C25": {**lifetimes, "fin_timeout_s": 60, "orphan_lifetime_s": None},
                       "C26": {**lifetimes, "fin_timeout_s": 60, "orphan_lifetime_s": None},
                       "C27": {"timers_s": [59.9]}}, {"wait_capped_s": 30.0})
    rows = {r["figure"]: r for r in trying.compare(tried, default)}
    assert list(rows) == ["C25/C26.fin_timeout_s", "C25/C26.orphan_lifetime_s",
                          "C25/C26.half_after", "C27.timers_s[0]"]
    life = rows["C25/C26.orphan_lifetime_s"]
    assert life["changed"] and life["default_shown"] == "> 30 s, still there"
    assert life["says"] == "C25/C26 orphan lifetime now 10.2 s (default > 30 s, still there)"
    assert rows["C27.timers_s[0]"]["says"] == "C27 timers[0] still 59.9 s"
    assert rows["C25/C26.half_after"]["changed"] is False


@pytest.mark.parametrize(("tried", "default", "waited", "changed"), [
    (10.0, 60.0, (None, None), True), (60.1, 59.9, (None, None), False),
    (10.0, None, (None, 120), True), (None, None, (120, 120), None), (None, 60.0, (30, None), False),
    ("FIN_WAIT2", "CLOSED", (None, None), True), (None, 60.0, (None, None), True),
])
def test_what_counts_as_changed(tried: object, default: object,
                                waited: tuple[float | None, float | None],
                                changed: bool | None) -> None:
    assert trying.differs(tried, default, waited) is changed


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="tcplab try needs root (namespaces)")
def test_a_key_missing_in_a_fresh_namespace_is_refused() -> None:
    done = tcplab("try", "--quick", "net.ipv4.tcp_no_such_thing=1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
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
                    "net.core.somaxconn = 1024\nnet.ipv4.tcp_ecn = 1\n")
    before = snapshot()
    done = tcplab("try", "--quick", "--json", str(conf))
    after = snapshot()
    assert done.returncode == 0, done.stderr
    assert {p for p in before if after.get(p) != before[p]} == set(), "host sysctls changed"
    items = _by_key(done.stdout)
    assert list(items) == ["net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                           "net.core.somaxconn", "net.ipv4.tcp_ecn"]
    idle = _figures(items["net.ipv4.tcp_keepalive_time"])["keepalive_only_timer_s"]
    assert idle["changed"] and abs(idle["tried"] - 600) < 2 and abs(idle["default"] - 7200) < 2
    fin = _figures(items["net.ipv4.tcp_fin_timeout"])
    timer = fin["orphan_fin_wait2_timer_s"]
    assert timer["changed"] and abs(timer["tried"] - 10) < 1 and abs(timer["default"] - 60) < 1
    assert fin["C25/C26.fin_timeout_s"]["in_force"]
    assert fin["C27.time_wait_timers_s[0]"]["changed"] is False
    assert fin["C25/C26.orphan_lifetime_s"]["tried_shown"] == "not waited"  # --quick
    somaxconn = _figures(items["net.core.somaxconn"])
    assert somaxconn["K06.setting"]["in_force"] and somaxconn["K06.queued"]["changed"] is False
    ecn = items["net.ipv4.tcp_ecn"]
    assert not ecn["measured"] and ecn["default"] == "2"
    text = tcplab("try", "--quick", str(conf))
    assert text.returncode == 0
    assert "net.ipv4.tcp_ecn = 1  (namespace default 2)\n  not measured:" in text.stdout
    assert "orphan fin wait2 timer now 10.0 s (default 60.0 s)" in text.stdout


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="tcplab try needs root (namespaces)")
def test_fin_timeout_10_measures_fin_wait2_and_time_wait_lifetimes() -> None:
    """~65 s: the default run of fin-wait2-timeout waits out a 60 s FIN_WAIT2."""
    before = snapshot()
    done = tcplab("try", "--json", "net.ipv4.tcp_fin_timeout=10", timeout=300)
    assert {p for p, v in snapshot().items() if before.get(p) != v} == set()
    assert done.returncode == 0, done.stderr
    item = _by_key(done.stdout)["net.ipv4.tcp_fin_timeout"]
    fin = _figures(item)
    life = fin["C25/C26.orphan_lifetime_s"]
    assert life["changed"] and 9 <= life["tried"] <= 13 and 59 <= life["default"] <= 66
    time_wait = fin["C27.time_wait_timers_s[0]"]
    assert time_wait["changed"] is False and 59 <= time_wait["tried"] <= 61
    assert "C25/C26 orphan lifetime now 1" in item["says"]


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="tcplab try needs root (namespaces)")
def test_a_lifetime_beyond_max_wait_is_still_there() -> None:
    done = tcplab("try", "--json", "--max-wait", "4", "net.ipv4.tcp_fin_timeout=2")
    assert done.returncode == 0, done.stderr
    life = _figures(_by_key(done.stdout)["net.ipv4.tcp_fin_timeout"])["C25/C26.orphan_lifetime_s"]
    assert life["changed"] and life["tried"] < 4 and life["default_shown"] == "> 4 s, still there"

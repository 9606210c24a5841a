"""The command line: exit codes, one-line errors, the results file of a real run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tcplab(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def said(stderr: str) -> list[str]:
    """stderr's lines but the note naming the scenario directory (``catalog.announce``)."""
    return [line for line in stderr.strip().splitlines()
            if not line.startswith("tcplab: scenarios from ")]


def test_list_names_every_scenario_file() -> None:
    done = tcplab("list", "--json")
    assert done.returncode == 0, done.stderr
    ids = {s["id"] for s in json.loads(done.stdout)}
    assert {"graceful-close", "close-wait-leak", "linger-abort", "half-close",
            "server-closes-first"} <= ids


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "no-such-scenario"), "unknown scenario no-such-scenario; known:"),
        (("run", "--repeat", "0"), "0 is not 1 or more"),
        (("run", "--repeat", "many"), "'many' is not a whole number"),
        (("frobnicate",), "invalid choice"),
        (("run", "--bogus"), "unrecognized arguments: --bogus (see `tcplab run --help`)"),
        (("list", "--bogus"), "(see `tcplab list --help`)"),
        (("list", "--scenarios", "/nonexistent"), "does not exist"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], needle: str) -> None:
    done = tcplab(*args)
    assert done.returncode == 2
    lines = said(done.stderr)
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_the_command_table_agrees_with_each_sub_command_module() -> None:
    """cli.COMMANDS repeats each module's NAME and HELP so that ``tcplab --help`` imports none
    of them: the copies must not drift."""
    import importlib

    from tcplab import cli

    for name, (module_name, help_text) in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        assert (name, help_text) == (module.NAME, module.HELP), module_name


def _loaded_by(*args: str) -> set[str]:
    """The modules ``tcplab ARGS`` has imported when it exits (its output is ignored)."""
    code = ("import sys\nfrom tcplab import cli\ntry:\n    cli.main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=60, check=False)
    return set(done.stderr.split())


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        (("--version",), {"tcplab.commands.run", "tcplab.commands.watch", "trio", "psutil",
                          "tcplab.scenario"}),
        (("--help",), {"tcplab.commands.run", "tcplab.commands.try_", "trio", "psutil"}),
        (("watch", "--once"), {"tcplab.commands.run", "trio", "psutil", "tcplab.scenario"}),
        (("list", "--help"), {"tcplab.commands.run", "tcplab.commands.watch"}),
    ],
)
def test_a_command_imports_only_what_it_needs(args: tuple[str, ...], absent: set[str]) -> None:
    """Issue 14 (a fast start): trio, psutil and the other sub-commands cost over 100 ms."""
    loaded = _loaded_by(*args)
    assert "tcplab.cli" in loaded
    assert not loaded & absent


def test_each_sub_command_help_lists_its_options() -> None:
    from tcplab import cli

    for name in cli.COMMANDS:
        done = tcplab(name, "--help")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"usage: tcplab {name} "), done.stdout
        assert cli.COMMANDS[name][1].split()[0] in done.stdout
        assert "options:" in done.stdout and "-h, --help" in done.stdout
    top = tcplab("--help").stdout
    assert all(f"    {name}" in top for name in cli.COMMANDS), top


def test_run_writes_results_and_exits_0(tmp_path: Path) -> None:
    done = tcplab("run", "server-closes-first", "linger-abort", "--repeat", "2",
                  "--results", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[4/4]" in done.stderr  # progress, one line per finished run
    (results,) = tmp_path.glob("*/results.json")
    data = json.loads(results.read_text())
    assert data["host"]["kernel"]
    assert "net.ipv4.tcp_fin_timeout" in data["host_sysctls"]
    runs = data["scenarios"]
    assert [r["status"] for r in runs] == ["passed"] * 4
    c14 = [v for r in runs for v in r["verdicts"] if v["claim"] == "C14"]
    assert len(c14) == 2 and all(v["verdict"] == "confirmed" for v in c14)
    timeline = runs[0]["timelines"][0]
    assert {"t", "end", "socket"} <= set(timeline[0])


#: A scenario whose expectation cannot be met: its run fails with a timeline, no traceback.
WRONG = (
        "from tcplab import Scenario, TcpState\n"
        "from tcplab.expect import reaches\n"
        "scenario = Scenario(id='wrong', title='expects what cannot happen', claims=('C10',), timeout=5)\n"
        "@scenario.body\n"
        "async def run(lab, verdicts):\n"
        "    conn = await lab.connect()\n"
        "    await reaches(conn.server, TcpState.TIME_WAIT, timeout=0.2)\n"
)


def test_a_failing_scenario_fails_the_run(tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "wrong.py").write_text(WRONG + "if __name__ == '__main__':\n    scenario.main()\n")
    done = tcplab("run", "--scenarios", str(scenarios), "--results", str(tmp_path / "out"))
    assert done.returncode == 1
    assert "expected TIME_WAIT within 0.2 s; last seen ESTABLISHED" in done.stderr
    assert "timeline (both ends)" in done.stderr


CRASHING = (
    "from tcplab import Scenario\n"
    "scenario = Scenario(id='crashing', title='raises from a helper', claims=('C10',), timeout=5)\n"
    "def helper():\n"
    "    raise RuntimeError('boom')\n"
    "@scenario.body\n"
    "async def run(lab, verdicts):\n"
    "    await lab.connect()\n"
    "    helper()\n"
    "if __name__ == '__main__':\n"
    "    scenario.main()\n"
)


def test_a_crashing_scenario_prints_its_traceback(tmp_path: Path) -> None:
    """Issue 10, fault 4: the traceback is printed with the failure, not only kept in
    results.json; through the runner and when the script runs alone."""
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "crashing.py").write_text(CRASHING)
    done = tcplab("run", "--scenarios", str(scenarios), "--results", str(tmp_path / "out"))
    assert done.returncode == 1
    failure = done.stderr[done.stderr.index("--- crashing failed ---"):]
    assert "crashed: RuntimeError: boom" in failure
    assert "Traceback (most recent call last):" in failure
    assert 'crashing.py", line 4, in helper' in failure
    alone = subprocess.run([sys.executable, str(scenarios / "crashing.py")], capture_output=True,
                           text=True, timeout=60, check=False)
    assert alone.returncode == 1
    assert "crashed: RuntimeError: boom" in alone.stdout
    assert 'crashing.py", line 4, in helper' in alone.stderr


def test_an_expectation_failure_prints_no_traceback(tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "wrong.py").write_text(WRONG)
    done = tcplab("run", "--scenarios", str(scenarios), "--results", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr


def test_a_scenario_script_runs_alone() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scenarios" / "half_close.py")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("half-close: PASSED")
    assert "C09: confirmed" in done.stdout


LONG_HOLD = """
import sys
from pathlib import Path
from tcplab import Scenario, TcpState
from tcplab.expect import holds
scenario = Scenario(id="long-hold", title="a child, then a 30 s hold", claims=(), timeout=60)
@scenario.body
async def run(lab, verdicts):
    try:
        await lab.spawn([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"])
        conn = await lab.connect()
        await holds(conn.server, TcpState.ESTABLISHED, for_=30)
    finally:  # runs only if the run's process cleans up (it is not SIGKILLed)
        Path(__file__).with_name("CLEANED").write_text("yes")
if __name__ == "__main__":
    scenario.main()
"""


def test_killing_the_runner_kills_its_scenarios(tmp_path: Path) -> None:
    """SIGKILL to `tcplab run` (a CI timeout): no scenario process, no child of one survives,
    and the run's own process cleans up on the way out (its death signal is SIGTERM): its
    tracefs instance is removed by itself, not left for the next run to sweep."""
    import os
    import signal
    import tempfile
    import time

    import psutil

    from tcplab.kernel import trace

    tracing = trace.available() is None
    (tmp_path / "long_hold.py").write_text(LONG_HOLD)
    runner = subprocess.Popen([sys.executable, "-m", "tcplab", "run", "--scenarios", str(tmp_path),
                               "--results", str(tmp_path / "out")], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    me = psutil.Process(runner.pid)
    family: list[psutil.Process] = []
    instances: list[str] = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait for the scenario, its child, its instance
            family = me.children(recursive=True)
            instances = [name for name in trace.instances() for p in family
                         if name.startswith(f"{trace.PREFIX}{p.pid}-")]
            if len(family) >= 2 and (instances or not tracing):
                break
            time.sleep(0.01)
        assert len(family) >= 2, "the scenario never started its child"
        assert instances or not tracing, "the scenario never made its tracefs instance"
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        # A zombie has closed its fds; it only waits for a reaper (PID 1 may not reap here).
        deadline = time.monotonic() + 5
        running = family
        while running and time.monotonic() < deadline:
            time.sleep(0.02)
            running = [p for p in family if _running(p)]
        assert not running, f"left running: {running}"
        assert (tmp_path / "CLEANED").exists(), "the run's process did not clean up"
        assert not set(instances) & set(trace.instances()), "tracefs instance left behind"
        assert not list(Path(tempfile.gettempdir()).glob("tcplab-*"))
    finally:  # whatever failed above, nothing this test started outlives it
        for proc in [*family, me]:
            if _running(proc):
                proc.kill()
        runner.wait()


def _running(proc: object) -> bool:
    import psutil

    assert isinstance(proc, psutil.Process)
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


OUTLIVES_IDLE_THREADS = """
import sys
from tcplab import Scenario, TcpState
from tcplab.expect import holds
scenario = Scenario(id="eleven-seconds", title="outlives trio's idle worker threads",
                    claims=(), timeout=30)
@scenario.body
async def run(lab, verdicts):
    child = await lab.spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    conn = await lab.connect()
    await holds(conn.server, TcpState.ESTABLISHED, for_=11.0)
    assert child.returncode is None, "the child died during the hold"
if __name__ == "__main__":
    scenario.main()
"""


def test_runs_longer_than_trio_idle_threads_are_not_killed(tmp_path: Path) -> None:
    """Regression: a death signal tied to a trio worker thread killed runs after 10 s."""
    (tmp_path / "eleven.py").write_text(OUTLIVES_IDLE_THREADS)
    done = tcplab("run", "--scenarios", str(tmp_path), "--results", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "eleven-seconds  1/1" in done.stdout
    # In a log (no TTY) a run going 10 s gets a heartbeat line between its start and its end.
    assert "[0/1] still running after 1" in done.stderr
    assert "eleven-seconds 1" in done.stderr.split("still running", 1)[1].splitlines()[0]


def _scenario(sid: str, *requires: str) -> str:
    return (f"from tcplab import Scenario\n"
            f"scenario = Scenario(id={sid!r}, title='t', claims=(), requires={requires!r})\n"
            "@scenario.body\n"
            "async def run(lab, verdicts):\n"
            "    await lab.connect()\n"
            "if __name__ == '__main__':\n"
            "    scenario.main()\n")


def test_strict_fails_on_skips_and_lists_them(tmp_path: Path) -> None:
    """Without --strict a skip passes (exit 0); with it, exit 1 and each skip with its reason."""
    (tmp_path / "odd.py").write_text(_scenario("odd-needs", "a-feature-nobody-has"))
    (tmp_path / "fine.py").write_text(_scenario("fine"))
    plain = tcplab("run", "--scenarios", str(tmp_path), "--results", str(tmp_path / "out"))
    assert plain.returncode == 0, plain.stderr
    assert "failures with --strict" not in plain.stderr
    strict = tcplab("run", "--strict", "--repeat", "2", "--scenarios", str(tmp_path),
                    "--results", str(tmp_path / "out"))
    assert strict.returncode == 1, strict.stderr
    listed = strict.stderr.split("--- 2 skipped runs (failures with --strict) ---\n", 1)[1]
    assert listed.splitlines() == ["  odd-needs (2 runs): needs a-feature-nobody-has, unknown here"]
    assert "4 runs in" in strict.stdout


ROOT_ONLY = shutil.which("setpriv") is not None and os.geteuid() == 0


@pytest.mark.skipif(not ROOT_ONLY, reason="needs root and setpriv to become an unprivileged user")
def test_strict_as_an_unprivileged_user(tmp_path: Path) -> None:
    """As nobody (uid 65534, no capability but reading files: the interpreter may live under
    a private home), a scenario that needs root is skipped; --strict makes that exit 1."""
    (tmp_path / "rooted.py").write_text(_scenario("rooted", "root"))
    tmp_path.chmod(0o777)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
              "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HOME": str(tmp_path)}
    done = subprocess.run([*nobody, sys.executable, "-m", "tcplab", "run", "--strict",
                           "--scenarios", str(tmp_path), "--results", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                          env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "--- 1 skipped run (failures with --strict) ---\n  rooted: needs root" in done.stderr
    (results,) = (tmp_path / "out").glob("*/results.json")
    data = json.loads(results.read_text())
    assert data["host"]["uid"] == 65534 and data["scenarios"][0]["status"] == "skipped"

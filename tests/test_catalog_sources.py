"""Your own scenarios beside the bundled ones (issue 12, item 7): a local ``scenarios/``
adds to the bundled scenarios (a repeated id replaces the bundled one), ``tcplab list`` says
where each came from, a local scenario imports the public helpers (``tcplab.measure``) and
the bundled ones, and a broken file is one line on stderr, not the end of every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: A scenario of the user's own: it measures with the public helpers and imports a bundled
#: helper (``_defaults``) the way a copied scenario does.
MINE = '''"""My own close, measured with the public helpers."""
from _defaults import fresh_netns_ints  # a bundled helper, still importable from a local scenario
from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.measure import leaves, path_of, state_of

scenario = Scenario(id="my-close", title="the client closes first (mine)", claims=(), timeout=10)


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    assert fresh_netns_ints is not None
    conn = await lab.connect()
    await conn.client.close()
    after = await leaves(conn.client, TcpState.ESTABLISHED, TcpState.FIN_WAIT1)
    assert state_of(after) in ("FIN_WAIT2", "TIME_WAIT"), state_of(after)
    assert "ESTABLISHED" in path_of(conn, "client")


if __name__ == "__main__":
    scenario.main()
'''

#: A local copy of a bundled scenario, its title changed: it replaces the bundled one.
REPLACING = '''from tcplab import Scenario
scenario = Scenario(id="half-close", title="my own half-close", claims=())
'''

BROKEN = {
    "syntax.py": "from tcplab import Scenario\nscenario = Scenario(id='syntax', title='x', claims=(\n",
    "missing_import.py": "import no_such_module_anywhere\n",
    "crashes.py": "from tcplab import Scenario\n\n\ndef boom():\n    raise RuntimeError('boom at import')\n\n\nboom()\n",
    "no_scenario.py": "VALUE = 1\n",
}


def tcplab(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})})


def local_scenarios(base: Path, files: dict[str, str]) -> Path:
    directory = base / "scenarios"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    for name, text in files.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o644)
    return directory


def listed(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    assert done.returncode == 0, done.stderr
    return {s["id"]: s for s in json.loads(done.stdout)}


def test_local_scenarios_add_to_the_bundled_ones_and_say_where_they_came_from(tmp_path: Path) -> None:
    directory = local_scenarios(tmp_path, {"mine.py": MINE, "half_close.py": REPLACING})
    done = tcplab("list", "--json", cwd=tmp_path)
    scenarios = listed(done)
    assert scenarios["my-close"]["from"] == "local"
    assert scenarios["my-close"]["path"] == str((directory / "mine.py").resolve())
    assert scenarios["graceful-close"]["from"] == "bundled"  # the bundled ones are still there
    assert scenarios["half-close"]["from"] == "local, replaces bundled"
    assert scenarios["half-close"]["title"] == "my own half-close"
    bundled = ROOT / "scenarios"
    assert done.stderr.strip() == (f"tcplab: scenarios from {bundled} (bundled) and "
                                   f"{directory.resolve()} (local)")
    table = tcplab("list", cwd=tmp_path)
    row = next(line for line in table.stdout.splitlines() if line.startswith("my-close "))
    assert " local " in row


def test_a_local_scenario_importing_the_public_helpers_runs(tmp_path: Path) -> None:
    local_scenarios(tmp_path, {"mine.py": MINE, **BROKEN})
    done = tcplab("run", "my-close", "--results", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (results,) = (tmp_path / "out").glob("*/results.json")
    runs = json.loads(results.read_text())["scenarios"]
    assert [(r["id"], r["status"]) for r in runs] == [("my-close", "passed")]


def test_the_environment_variable_names_the_local_directory(tmp_path: Path) -> None:
    directory = local_scenarios(tmp_path, {"mine.py": MINE})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    scenarios = listed(tcplab("list", "--json", cwd=elsewhere,
                              env={"TCPLAB_SCENARIOS": str(directory)}))
    assert scenarios["my-close"]["from"] == "local" and "graceful-close" in scenarios


def test_broken_files_are_one_line_each_and_skipped(tmp_path: Path) -> None:
    directory = local_scenarios(tmp_path, {"mine.py": MINE, **BROKEN})
    done = tcplab("list", "--json", cwd=tmp_path)
    scenarios = listed(done)
    assert "my-close" in scenarios and "graceful-close" in scenarios
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("tcplab: scenarios from ")
    skips = {Path(line.split()[2].rstrip(":")).name: line for line in lines[1:]}
    assert sorted(skips) == sorted(BROKEN), done.stderr
    # the file as found (./scenarios), and why
    assert all(line.startswith(f"tcplab: skipped scenarios/{name}: ") for name, line in skips.items())
    assert directory.is_dir()
    assert "SyntaxError: " in skips["syntax.py"] and "line 2" in skips["syntax.py"]
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere' (line 1)" in skips["missing_import.py"]
    assert "RuntimeError: boom at import (line 5)" in skips["crashes.py"]
    assert "defines no `scenario = Scenario(...)`" in skips["no_scenario.py"]
    assert "Traceback" not in done.stderr


def test_an_id_twice_in_one_directory_keeps_the_first(tmp_path: Path) -> None:
    local_scenarios(tmp_path, {"mine.py": MINE, "mine_again.py": MINE})
    done = tcplab("list", "--json", cwd=tmp_path)
    assert str(listed(done)["my-close"]["path"]).endswith("/mine.py")
    assert "mine_again.py: scenario id 'my-close' is declared twice" in done.stderr


def test_a_helper_named_like_a_bundled_one_is_pointed_out(tmp_path: Path) -> None:
    local_scenarios(tmp_path, {"mine.py": MINE, "_defaults.py": "X = 1\n"})
    done = tcplab("list", "--json", cwd=tmp_path)
    assert "my-close" in listed(done)
    assert "tcplab: scenarios/_defaults.py has a bundled helper's name" in done.stderr


def test_an_explicit_directory_is_loaded_alone(tmp_path: Path) -> None:
    directory = local_scenarios(tmp_path, {"mine.py": MINE})
    scenarios = listed(tcplab("list", "--json", "--scenarios", str(directory), cwd=tmp_path))
    assert list(scenarios) == ["my-close"]


def test_run_from_the_checkout_the_scenarios_are_the_bundled_ones() -> None:
    done = tcplab("list", "--json", cwd=ROOT)
    scenarios = listed(done)
    assert {s["from"] for s in scenarios.values()} == {"bundled"}
    assert done.stderr.strip() == f"tcplab: scenarios from {ROOT / 'scenarios'}"

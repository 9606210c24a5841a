"""What root runs: scenario directories found implicitly are loaded only if nobody but the
invoking user and root could have written them (``tcplab.catalog``), and scenario
directories never shadow real modules on ``sys.path``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab import catalog

#: A scenario file that leaves a mark if anything executes it.
EVIL = """
from pathlib import Path
Path(__file__).with_name("EXECUTED").write_text("ran")
from tcplab import Scenario
scenario = Scenario(id="evil", title="writes a marker when imported", claims=())
"""


def tcplab(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False, env={**os.environ, **(env or {})})


def scenarios_in(base: Path, mode: int) -> Path:
    directory = base / "scenarios"
    directory.mkdir()
    (directory / "evil.py").write_text(EVIL)
    directory.chmod(mode)
    return directory


def test_root_refuses_a_world_writable_scenarios_directory(tmp_path: Path) -> None:
    """As root (the suite runs as root here, as CI's `sudo tcplab list`): ./scenarios that
    anyone may write is refused with one line naming it and --scenarios, and nothing in it ran."""
    directory = scenarios_in(tmp_path, 0o777)
    for args in (("list",), ("run", "evil"), ("claims",)):
        done = tcplab(*args, cwd=tmp_path)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert str(directory) in lines[0] and "--scenarios" in lines[0]
        assert "writable by others" in lines[0]
    assert not (directory / "EXECUTED").exists(), "a refused scenario file was executed"


def test_the_environment_variable_is_checked_too(tmp_path: Path) -> None:
    directory = scenarios_in(tmp_path, 0o755)
    (directory / "evil.py").chmod(0o666)
    done = tcplab("list", cwd=tmp_path, env={"TCPLAB_SCENARIOS": str(directory)})
    assert done.returncode == 2 and "$TCPLAB_SCENARIOS" in done.stderr, done.stderr
    assert "evil.py is writable by others" in done.stderr
    assert not (directory / "EXECUTED").exists()


def test_an_explicit_directory_is_the_users_choice_and_is_named(tmp_path: Path) -> None:
    directory = scenarios_in(tmp_path, 0o777)
    done = tcplab("list", "--scenarios", str(directory), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"tcplab: scenarios from {directory.resolve()}" in done.stderr
    assert (directory / "EXECUTED").exists()


def test_a_safe_directory_loads_and_is_named(tmp_path: Path) -> None:
    """Beside the bundled scenarios (the checkout's, here), named in the same one line."""
    directory = scenarios_in(tmp_path, 0o755)
    done = tcplab("list", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bundled = catalog.bundled_dir()
    assert bundled is not None
    assert done.stderr.strip() == (f"tcplab: scenarios from {bundled.resolve()} (bundled) "
                                   f"and {directory.resolve()} (local)")


def test_group_writable_files_and_foreign_owners_are_reasons(tmp_path: Path) -> None:
    directory = scenarios_in(tmp_path, 0o755)
    assert catalog.untrusted(directory) is None
    (directory / "__pycache__").mkdir(mode=0o775)
    (directory / "__pycache__").chmod(0o775)
    assert catalog.untrusted(directory) == f"{directory / '__pycache__'} is writable by its group"
    (directory / "__pycache__").chmod(0o755)
    if os.geteuid() == 0:  # only root can give a file away
        os.chown(directory / "evil.py", 54321, -1)
        assert catalog.untrusted(directory) == f"{directory / 'evil.py'} belongs to uid 54321"


def test_sticky_ancestors_are_fine_but_writable_ones_are_not(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    directory = scenarios_in(parent, 0o755)
    parent.chmod(0o1777)  # like /tmp: others cannot rename what is ours
    assert catalog.untrusted(directory) is None
    parent.chmod(0o777)  # others could replace the directory itself
    assert catalog.untrusted(directory) == f"{parent} is writable by others"


def test_scenario_directories_are_appended_to_sys_path(tmp_path: Path) -> None:
    directory = tmp_path / "scen"
    directory.mkdir()
    (directory / "_helper.py").write_text("VALUE = 42\n")
    (directory / "uses_helper.py").write_text(
        "from _helper import VALUE\nfrom tcplab import Scenario\n"
        "scenario = Scenario(id='uses-helper', title=str(VALUE), claims=())\n")
    before = list(sys.path)
    try:
        loaded = catalog.load(directory / "uses_helper.py")
        assert loaded.title == "42"  # the sibling helper imported
        assert sys.path[: len(before)] == before  # nothing put in front
        added = [p for p in sys.path[len(before):] if p not in before]
        bundled = catalog.bundled_dir()  # then the bundled helpers, for a copied scenario
        assert added[0] == str(directory.resolve())
        assert bundled is None or str(bundled.resolve()) in sys.path
    finally:
        sys.path[:] = before
        sys.modules.pop("_helper", None)
        sys.modules.pop("tcplab_scenario_uses_helper", None)


@pytest.mark.parametrize("sudo_uid", ["1234", ""])
def test_the_user_who_invoked_sudo_is_trusted_only_under_root(
    monkeypatch: pytest.MonkeyPatch, sudo_uid: str
) -> None:
    monkeypatch.setenv("SUDO_UID", sudo_uid)
    owners = catalog.trusted_owners()
    assert {0, os.getuid()} <= owners
    assert (1234 in owners) == (sudo_uid == "1234" and os.geteuid() == 0)

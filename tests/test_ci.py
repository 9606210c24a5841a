"""The CI workflow runs what the README promises (actionlint checks its syntax in
``nox -s lint``; this checks its content against the project)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_the_workflow_runs_the_nox_sessions_that_exist() -> None:
    text = WORKFLOW.read_text()
    sessions = set(re.findall(r"^def (\w+)\(session", (ROOT / "noxfile.py").read_text(), re.M))
    used = set(re.findall(r"nox -s (\w+)", text))
    assert used == {"lint", "tests", "scenarios", "realworld"} and used <= sessions


def test_realworld_runs_as_root_strict_with_its_servers_installed() -> None:
    text = WORKFLOW.read_text()
    job = text[text.index("  realworld:"):]
    assert "apt-get install" in job and "redis-server" in job and "postgresql" in job
    assert re.search(r'sudo env "PATH=\$PATH" "GITHUB_STEP_SUMMARY=\$GITHUB_STEP_SUMMARY"\s+'
                     r"nox -s realworld -- --strict", job)


def test_scenarios_run_as_root_strict_with_summary_and_results_kept() -> None:
    text = WORKFLOW.read_text()
    assert re.search(r'sudo env "PATH=\$PATH" "GITHUB_STEP_SUMMARY=\$GITHUB_STEP_SUMMARY"\s+'
                     r"nox -s scenarios -- --strict", text)
    assert 'sudo env "PATH=$PATH" nox -s tests' in text
    upload = text[text.index("actions/upload-artifact"):]
    assert "if: always()" in text[text.index("upload results"):text.index("actions/upload-artifact")]
    assert "results/\n" in upload and "!results/reference/" in upload

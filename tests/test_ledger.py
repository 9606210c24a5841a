"""The claims ledger, built from a real run of a real scenario.

``graceful-close`` is run through the runner exactly as a person would (``python -m tcplab
run graceful-close --results DIR``); the ledger in its results file, and the one ``tcplab
claims`` prints, must hold every claim, the scenario's measured verdicts on the claims
it covers, and a stated reason for the claims no machine here can reproduce. Only the
merging of disagreeing verdicts is tested on a hand-written results dict: a real run that
disagrees with itself can't be ordered up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tcplab import catalog, claims, ledger

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "graceful-close"


def tcplab(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "tcplab", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("results")
    proc = tcplab("run", SCENARIO, "--repeat", "2", "--results", str(base))
    assert proc.returncode == 0, proc.stderr
    (path,) = base.glob("*/results.json")
    return path


@pytest.fixture(scope="module")
def results(run_file: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run_file.read_text())
    return data


def test_claims_are_the_articles_c01_to_c40_then_the_kernel_docs() -> None:
    ids = [c.id for c in claims.CLAIMS]
    assert ids[:40] == [f"C{n:02d}" for n in range(1, 41)]
    kernel, libraries = claims.KERNEL_CLAIMS, claims.LIBRARY_CLAIMS
    assert ids[40:] == [c.id for c in (*kernel, *libraries)]
    assert all(c.id[0] == "K" for c in kernel) and all(c.id[0] == "L" for c in libraries)
    assert all(c.section in claims.SECTIONS and c.statement for c in claims.CLAIMS)
    assert all(bool(c.seeds) != bool(c.source) for c in claims.CLAIMS)  # one origin each
    assert {c.id for c in claims.CLAIMS if c.unreproducible} >= {"C37", "C38"}


def test_run_writes_a_ledger_of_every_claim(results: dict[str, Any]) -> None:
    rows = results["ledger"]
    assert [r["claim"] for r in rows] == [c.id for c in claims.CLAIMS]
    for row in rows:
        if row["status"] == ledger.JUDGED:
            assert row["verdict"] and row["scenarios"] and row["evidence"]
        else:
            assert row["verdict"] is None and row["evidence"], row


def test_covered_claims_carry_the_measured_verdicts(results: dict[str, Any]) -> None:
    covered = catalog.discover(str(ROOT / "scenarios"))[SCENARIO].claims
    measured: dict[str, set[str]] = {}
    for run in results["scenarios"]:
        assert run["id"] == SCENARIO and run["status"] == "passed"
        for v in run["verdicts"]:
            measured.setdefault(v["claim"], set()).add(v["verdict"])
    rows = {r["claim"]: r for r in results["ledger"]}
    assert set(measured) == set(covered)
    for claim in covered:
        row = rows[claim]
        assert row["status"] == ledger.JUDGED
        assert set(row["verdict"].split("/")) == measured[claim]
        assert row["scenarios"] == [SCENARIO]
        assert sum(row["counts"].values()) == 2  # both repeats
    summaries = {v["claim"]: v["summary"] for v in results["scenarios"][0]["verdicts"]}
    assert rows["C10"]["evidence"] == summaries["C10"]


def test_unreproducible_claims_say_why(results: dict[str, Any]) -> None:
    rows = {r["claim"]: r for r in results["ledger"]}
    for claim in ("C37", "C38"):
        assert rows[claim]["status"] == ledger.UNREPRODUCIBLE
        assert rows[claim]["evidence"].startswith("not reproducible here: ")
        assert claims.get(claim).unreproducible in rows[claim]["evidence"]


def test_claims_command_reads_the_results_file(run_file: Path, results: dict[str, Any]) -> None:
    proc = tcplab("claims", str(run_file), "--json")
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    assert printed["run_id"] == results["run_id"]
    assert printed["ledger"] == results["ledger"]
    table = tcplab("claims", str(run_file))
    assert table.returncode == 0
    for claim in claims.CLAIMS:
        assert f"\n{claim.id} " in table.stdout


def test_claims_command_takes_the_newest_run(run_file: Path) -> None:
    proc = tcplab("claims", "--results", str(run_file.parent.parent), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"] == str(run_file)


def test_claims_without_results_prints_coverage_and_exits_3(tmp_path: Path) -> None:
    proc = tcplab("claims", "--results", str(tmp_path / "none"), "--json")
    assert proc.returncode == 3
    lines = [line for line in proc.stderr.strip().splitlines()
             if not line.startswith("tcplab: scenarios from ")]  # where the catalog came from
    assert "no results" in proc.stderr and len(lines) == 1
    rows = json.loads(proc.stdout)["ledger"]
    assert len(rows) == len(claims.CLAIMS)
    allowed = {ledger.NOT_RUN, ledger.NO_SCENARIO, ledger.UNREPRODUCIBLE}
    assert {r["status"] for r in rows} <= allowed
    assert all(r["verdict"] is None for r in rows)


def test_a_missing_results_file_is_a_usage_error(tmp_path: Path) -> None:
    proc = tcplab("claims", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def _run(sid: str, status: str, verdicts: dict[str, str], reason: str = "") -> dict[str, Any]:
    return {"id": sid, "title": sid, "claims": sorted(verdicts) or ["C06"], "status": status,
            "reason": reason, "mode": "host loopback",
            "verdicts": [{"claim": c, "verdict": v, "summary": f"{sid} says {v}", "evidence": {}}
                         for c, v in verdicts.items()]}


def test_disagreeing_verdicts_are_all_shown() -> None:
    """Hand-written results: the merge rule only (verdicts themselves come from real runs)."""
    data = {"scenarios": [
        _run("a", "passed", {"C05": "confirmed"}),
        _run("a", "passed", {"C05": "partly"}),
        _run("a", "passed", {"C05": "confirmed"}),
        _run("b", "passed", {"C05": "refuted"}),
        _run("a", "failed", {"C05": "refuted"}, reason="expected TIME_WAIT\nmore"),
        _run("c", "skipped", {}, reason="needs root: run as root"),
    ]}
    rows = {r.claim.id: r for r in ledger.build(data)}
    row = rows["C05"]
    assert row.status == ledger.JUDGED
    assert row.verdict == "confirmed/partly/refuted"
    # the failed run's "refuted" is not counted: only b's is
    assert row.counts == {"confirmed": 2, "partly": 1, "refuted": 1}
    assert row.scenarios == ["a", "b"]
    assert "a: 1 failed, 3 passed" in row.evidence
    skipped = rows["C06"]
    assert skipped.status == ledger.SKIPPED
    assert skipped.evidence == (
        "no verdict in this run: scenario c was skipped (needs root: run as root)")
    assert rows["C01"].status == ledger.NO_SCENARIO


def test_claims_markdown_is_the_readme_table(run_file: Path) -> None:
    done = tcplab("claims", str(run_file), "--markdown")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("| claim | articles |") and len(lines) == 2 + len(claims.CLAIMS)
    assert "| K01 | kernel docs (`Documentation/networking/ip-sysctl.rst`) |" in done.stdout
    assert "| L01 | tracker (`urllib3 #2100, #1301, #3189`) |" in done.stdout
    c37 = next(line for line in lines if line.startswith("| C37 |"))
    assert "| not reproducible |" in c37
    readme = (ROOT / "README.md").read_text()
    assert lines[0] in readme  # the README carries this table (regenerated from a full run)


def test_no_reference_points_outside_the_repository() -> None:
    """The articles and the claims list are not shipped: the README, the code and the
    scenarios name the articles by number and file name (claims.ARTICLES), never a path
    or document outside this repository."""
    texts = [ROOT / "README.md", ROOT / "results" / "README.md",
             *(ROOT / "src").rglob("*.py"), *(ROOT / "scenarios").glob("*.py")]
    outside = ("DESIGN.md", "CLAIMS.md", "seeds/", "shared/")
    found = [f"{p.relative_to(ROOT)}: {word}" for p in texts for word in outside
             if word in p.read_text()]
    assert found == []
    readme = (ROOT / "README.md").read_text()
    assert all(a.file in readme and a.title in readme for a in claims.ARTICLES.values())

"""One results loader and one "newest run" rule (issue 10, fault 3): ``claims``, ``states``,
``report`` and ``doctor`` agree on the newest run, and ``reference`` is never it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tcplab.errors import UsageError
from tcplab.kernel import trace
from tcplab.results import ClaimRow, load, newest, parse, run_files

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference" / "results.json"


def tcplab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tcplab", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


def _run(base: Path, name: str, mtime: float, run_id: str | None = None) -> Path:
    path = base / name / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"run_id": run_id or name, "scenarios": []}))
    os.utime(path, (mtime, mtime))
    return path


def test_newest_is_the_latest_dated_run_never_reference_nor_the_latest_mtime(tmp_path: Path) -> None:
    old = _run(tmp_path, "20260101-090000-77", mtime=3_000)  # touched last: still older
    new = _run(tmp_path, "20260102-080000-12", mtime=2_000)
    _run(tmp_path, "reference", mtime=4_000)  # sorts after dates, and a checkout touches it
    _run(tmp_path, "my-copy", mtime=5_000)
    assert newest(tmp_path) == new
    assert run_files(tmp_path) == [new, old]


def test_runs_started_in_the_same_second_go_by_mtime(tmp_path: Path) -> None:
    _run(tmp_path, "20260102-080000-900", mtime=1_000)
    later = _run(tmp_path, "20260102-080000-12", mtime=1_001)
    assert newest(tmp_path) == later


def test_no_run_and_one_run_directory(tmp_path: Path) -> None:
    assert newest(tmp_path) is None
    one = _run(tmp_path, "anything", mtime=1_000)
    assert newest(one.parent) == one  # a run's own directory is that run


def test_the_loader_types_scenario_results_and_refuses_other_shapes(tmp_path: Path) -> None:
    if REFERENCE.is_file():
        run = load(REFERENCE)
        assert run.scenarios and all(isinstance(s.status, str) for s in run.scenarios)
    bad: object
    for bad in ({"scenarios": [1]}, {"scenarios": [{"id": "x"}]}, {"scenarios": [], "summary": {}},
                {"scenarios": [], "ledger": ["C01"]}, [], {"scenarios": "all"}):
        path = tmp_path / "results.json"
        path.write_text(json.dumps(bad))
        with pytest.raises(UsageError):
            load(path)


def _scenario(sid: str, status: str, connections: int = 0, verdicts: Any = ()) -> dict[str, Any]:
    conn = {"client": "127.0.0.1:1 -> 127.0.0.1:2", "server": "127.0.0.1:2 -> 127.0.0.1:1",
            "accepted": True, "segments": 3, "traced_path": {"client": ["FIN_WAIT2"]},
            "timeline": [{"t": 0.1, "end": "client"}], "body_ended_s": 0.5}
    return {"id": sid, "title": sid, "claims": ["C02"], "status": status, "reason": "",
            "verdicts": list(verdicts), "connections": [dict(conn)] * connections}


def test_the_model_is_typed_from_the_files_own_fields(tmp_path: Path) -> None:
    """Sections take the run worth drawing; a claim's verdicts come from ``counts`` (each on
    its own), a summary row's from its joined text, both split once and ordered here."""
    data = {"run_id": "r", "wall_time_s": 2.5, "host": {"kernel": "6.18"}, "scenarios": [
        _scenario("a", "failed", connections=1),
        _scenario("a", "passed", verdicts=[{"claim": "C02", "verdict": "partly", "summary": "s"}]),
        _scenario("a", "passed", connections=2, verdicts=[
            {"claim": "C02", "verdict": "confirmed", "summary": "`x`"}]),
        _scenario("b", "skipped")],
        "summary": [{"id": "a", "runs": 3, "passed": 2, "failed": 1, "skipped": 0,
                     "median_s": 0.25, "verdicts": {"C02": "partly/confirmed"}}],
        "ledger": [{"claim": "C02", "status": "judged", "verdict": "confirmed/partly",
                    "counts": {"partly": 1, "confirmed": 1}, "scenarios": ["a"]}]}
    run = parse(data, tmp_path / "results.json")
    assert (run.kernel, run.wall_time) == ("6.18", 2.5)
    a, b = run.sections
    assert (a.id, a.status, a.runs, len(a.connections)) == ("a", "passed", 3, 2)
    assert [f.verdict for f in a.findings] == ["confirmed"]
    assert a.connections[0].traced_path == (("client", ("FIN_WAIT2",)),)
    assert a.connections[0].closed_at == 0.5 and b.connections == ()
    assert run.summary[0].verdicts == (("C02", ("confirmed", "partly")),)
    assert run.claims == (ClaimRow("C02", "", "judged", ("confirmed", "partly"), ("a",), ""),)


def test_without_summary_or_ledger_both_are_made_from_the_scenarios(tmp_path: Path) -> None:
    data = {"scenarios": [_scenario("a", "passed", verdicts=[
        {"claim": "C02", "verdict": "refuted", "summary": "s"}])]}
    run = parse(data, tmp_path / "results.json")
    assert [(r.id, r.passed, r.verdicts) for r in run.summary] == [("a", 1, (("C02", ("refuted",)),))]
    assert len(run.claims) >= 40 and {c.claim: c.verdicts for c in run.claims}["C02"] == ("refuted",)


def test_evidence_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    for conn in ({"timeline": 5}, {"timeline": [{"t": "soon", "end": "client"}]},
                 {"timeline": [], "traced_path": {"client": "FIN_WAIT2"}},
                 {"timeline": [], "segments": "many"}):
        item = {**_scenario("a", "passed"), "connections": [conn]}
        with pytest.raises(UsageError, match="scenarios\\[0\\] \\(a\\)"):
            parse({"scenarios": [item]}, tmp_path / "results.json")


@pytest.mark.root
@pytest.mark.skipif(trace.available() is not None, reason=f"needs tracefs ({trace.available()})")
def test_after_a_run_every_command_reads_it(tmp_path: Path) -> None:
    """``tcplab run all-states`` next to a committed reference run (fresh mtime, as after a
    checkout): ``states`` shows that run, and the four commands name the same newest run.
    The CLOSE_WAIT row's peer is what the trace says (FIN_WAIT2), not a stale ESTABLISHED."""
    if REFERENCE.is_file():
        shutil.copytree(REFERENCE.parent, tmp_path / "reference")
    tcplab("run", "all-states", "--results", str(tmp_path))  # its verdicts are not the point
    made = newest(tmp_path)
    assert made is not None and made.parent.name != "reference"
    results = str(tmp_path)
    states: dict[str, Any] = json.loads(tcplab("states", "--results", results, "--json").stdout)
    claims = json.loads(tcplab("claims", "--results", results, "--json").stdout)
    doctor = json.loads(tcplab("doctor", "--results", results, "--json").stdout)
    report = tcplab("report", "--results", results)
    assert states["newest_run"] == claims["results"] == doctor["results"] == str(made)
    assert report.returncode == 0 and f"report of run {made.parent.name}:" in report.stdout
    observed = {k: v for k, v in states["states"].items() if v is not None}
    assert observed and all(v["results"] == str(made) for v in observed.values()), observed
    close_wait = states["states"]["CLOSE_WAIT"]["observed"]
    assert close_wait is not None
    peer = close_wait["peers"]["client"]
    assert peer is not None and peer["state"] == "FIN_WAIT2", close_wait
    table = tcplab("states", "--results", results).stdout
    assert f"newest run: {made.parent.name}" in table and "reference" not in table

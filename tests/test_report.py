"""The report of a real run: a diagram per scenario, Markdown and HTML, nothing external."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab import diagram, report, results

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real run, as in a GitHub Actions job: ``$GITHUB_STEP_SUMMARY`` names a file
    (``step-summary.md`` beside the results directory) that already holds a line."""
    base = tmp_path_factory.mktemp("results")
    summary = base.parent / f"{base.name}-step-summary.md"
    summary.write_text("before\n")
    done = subprocess.run(
        [sys.executable, "-m", "tcplab", "run", "graceful-close", "linger-abort",
         "segments", "--results", str(base)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 0, done.stderr
    (directory,) = base.iterdir()
    return directory


def _step_summary(run_dir: Path) -> Path:
    base = run_dir.parent
    return base.parent / f"{base.name}-step-summary.md"


def test_every_run_writes_both_reports(run_dir: Path) -> None:
    md = (run_dir / "REPORT.md").read_text()
    html = (run_dir / "report.html").read_text()
    results = json.loads((run_dir / "results.json").read_text())
    ran = {s["id"] for s in results["scenarios"] if s["status"] != "skipped"}
    for sid in ran:
        section = md.split(f"### {sid}\n", 1)[1].split("\n### ", 1)[0]
        assert "```mermaid\nsequenceDiagram" in section, sid
        assert f'<section class="scenario" id="scenario-{sid}">' in html
    assert html.count("<svg") >= len(ran)


def test_html_is_self_contained(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    assert "<script" not in html.lower()
    external = re.findall(r"""(?:src|href)=["'](?!#)([^"']+)""", html)
    assert external == [], external


def test_the_graceful_close_diagram_reads_like_the_textbook(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    run = next(s for s in results["scenarios"] if s["id"] == "graceful-close")
    if "capture" not in run["observation"]:
        pytest.skip(f"no segments without root: {run['observation']}")
    conn = run["connections"][0]
    arrows = [s.label.split(" ")[0] for s in diagram.steps(conn) if s.kind == "arrow"]
    assert arrows[:4] == ["SYN", "SYN,ACK", "ACK", "FIN,ACK"]
    assert [a for a in arrows if "FIN" in a] == ["FIN,ACK", "FIN,PSH,ACK"]
    assert conn["traced_path"]["client"][-3:] == ["FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT"]
    mermaid = diagram.mermaid(conn)
    assert "Note over C: TIME_WAIT" in mermaid and "C->>S: SYN (seq 0)" in mermaid


def test_the_abort_diagram_shows_the_reset(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    run = next(s for s in results["scenarios"] if s["id"] == "linger-abort")
    if "capture" not in run["observation"]:
        pytest.skip(f"no segments without root: {run['observation']}")
    mermaid = diagram.mermaid(run["connections"][0])
    assert re.search(r"C-xS: RST", mermaid), mermaid


def test_report_command_rebuilds_and_refuses_nonsense(run_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tcplab", "report", str(run_dir / "results.json"),
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "REPORT.md").read_text() == (run_dir / "REPORT.md").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    for path in (bad, tmp_path / "missing.json"):
        done = subprocess.run([sys.executable, "-m", "tcplab", "report", str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_run_appends_the_step_summary_and_report_does_not(run_dir: Path,
                                                         tmp_path: Path) -> None:
    """``tcplab run`` appends its summary to ``$GITHUB_STEP_SUMMARY`` by an explicit call
    (commands/run.py); writing a report, by ``tcplab report`` or ``report.write``, does not."""
    summary = _step_summary(run_dir)
    text = summary.read_text()
    assert text.startswith("before\n") and text.count("## tcplab run ") == 1, text
    assert "| graceful-close |" in text and "### Claims" in text
    run = results.load(run_dir / "results.json")
    from tcplab.render import markdown
    assert text == "before\n" + markdown.summary(run)
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    done = subprocess.run([sys.executable, "-m", "tcplab", "report", str(run_dir), "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False, env=env)
    assert done.returncode == 0, done.stderr
    report.write(run, tmp_path)
    assert summary.read_text() == text


def test_write_step_summary_only_in_a_ci_job(run_dir: Path, tmp_path: Path) -> None:
    run = results.load(run_dir / "results.json")
    assert report.write_step_summary(run, {}) is None
    target = tmp_path / "summary.md"
    assert report.write_step_summary(run, {"GITHUB_STEP_SUMMARY": str(target)}) == target
    assert report.write_step_summary(run, {"GITHUB_STEP_SUMMARY": str(target)}) == target
    assert target.read_text().count(f"## tcplab run {run.run_id}") == 2  # appended, not replaced


@pytest.mark.parametrize("fmt", sorted(report.FORMATS))
def test_report_format_prints_one_rendering(run_dir: Path, fmt: str) -> None:
    """``tcplab report --format F`` prints F to stdout and writes nothing; markdown and html
    are the very files the run wrote."""
    before = sorted(p.name for p in run_dir.iterdir())
    done = subprocess.run([sys.executable, "-m", "tcplab", "report", "--format", fmt,
                           str(run_dir / "results.json")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == before
    out = done.stdout
    if fmt in report.FILES:
        assert out == (run_dir / report.FILES[fmt]).read_text()
    if fmt == "json":
        data = json.loads(out)
        assert [s["id"] for s in data["scenarios"]] == ["graceful-close", "linger-abort",
                                                        "segments"]
        assert all(isinstance(c["verdicts"], list) for c in data["claims"])
    if fmt == "text":
        assert "graceful-close: PASSED" in out and "C02 " in out and "<" not in out


def test_format_and_out_are_exclusive(run_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tcplab", "report", "--format", "text",
                           "--out", str(tmp_path), str(run_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and "not allowed with" in done.stderr


def test_without_trace_the_diagram_uses_snapshots() -> None:
    sock = {"state": "FIN_WAIT2"}
    conn = {"client": "127.0.0.1:1 -> 127.0.0.1:2", "server": "127.0.0.1:2 -> 127.0.0.1:1",
            "timeline": [{"t": 0.1, "end": "client", "source": "snapshot", "socket": sock},
                         {"t": 0.2, "end": "client", "source": "snapshot", "socket": sock},
                         {"t": 0.3, "end": "server", "source": "snapshot", "socket": None}]}
    labels = [(s.lane, s.label) for s in diagram.steps(conn)]
    assert labels == [("client", "seen FIN_WAIT2"), ("server", "seen gone")]
    assert "<svg" in diagram.svg(conn) and "Note over S: seen gone" in diagram.mermaid(conn)

"""The report of a real run: a diagram per scenario, Markdown and HTML, nothing external."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tcplab import diagram, report

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("results")
    done = subprocess.run(
        [sys.executable, "-m", "tcplab", "run", "graceful-close", "linger-abort",
         "segments", "--results", str(base)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    (directory,) = base.iterdir()
    return directory


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


def test_step_summary_is_appended(run_dir: Path, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    report.write(report.load(run_dir / "results.json"), tmp_path)
    text = summary.read_text()
    assert text.startswith("before\n") and "| graceful-close |" in text


def test_without_trace_the_diagram_uses_snapshots() -> None:
    sock = {"state": "FIN_WAIT2"}
    conn = {"client": "127.0.0.1:1 -> 127.0.0.1:2", "server": "127.0.0.1:2 -> 127.0.0.1:1",
            "timeline": [{"t": 0.1, "end": "client", "source": "snapshot", "socket": sock},
                         {"t": 0.2, "end": "client", "source": "snapshot", "socket": sock},
                         {"t": 0.3, "end": "server", "source": "snapshot", "socket": None}]}
    labels = [(s.lane, s.label) for s in diagram.steps(conn)]
    assert labels == [("client", "seen FIN_WAIT2"), ("server", "seen gone")]
    assert "<svg" in diagram.svg(conn) and "Note over S: seen gone" in diagram.mermaid(conn)

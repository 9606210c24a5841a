"""The report rendered from data (issue 10, fault 5): a skipped run's reason intact, links
from the claims table and a contents list to each scenario's section, Markdown code spans,
the diagram legend once, and one line (exit 2) for JSON of an unexpected shape."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html import escape
from pathlib import Path
from typing import Any

from tcplab import diagram, results
from tcplab.render import html, markdown
from tcplab.results import Run

ROOT = Path(__file__).resolve().parents[1]
REASON = "needs root (CAP_NET_RAW: segments on lo), see `tcplab doctor`, then C02 confirmed/refuted"


def _run() -> Run:
    return results.parse(_results(), Path("results.json"))


def _results() -> dict[str, Any]:
    def scenario(sid: str, status: str, reason: str = "", verdicts: Any = ()) -> dict[str, Any]:
        return {"id": sid, "title": f"{sid} title", "claims": ["C02"], "status": status,
                "reason": reason, "duration_s": 0.5, "mode": "host loopback",
                "verdicts": list(verdicts), "connections": [], "observation": "snapshots only"}

    passed = scenario("graceful-close", "passed", verdicts=[
        {"claim": "C02", "verdict": "confirmed", "summary": "the `FIN` came first"}])
    conn = {"client": "127.0.0.1:1 -> 127.0.0.1:2", "server": "127.0.0.1:2 -> 127.0.0.1:1",
            "accepted": True, "segments": 0, "traced_path": {}, "timeline": [
                {"t": 0.1, "end": "client", "source": "trace", "kind": "state", "text": "a -> b",
                 "old": "ESTABLISHED", "new": "FIN_WAIT1"}]}
    passed["connections"] = [conn, dict(conn)]
    other = scenario("half-close", "passed", verdicts=[
        {"claim": "C09", "verdict": "confirmed", "summary": "data arrived"}])
    other["connections"] = [dict(conn)]
    return {"run_id": "20260101-000000-1", "started": "", "wall_time_s": 1.0, "host": {},
            "scenarios": [passed, other, scenario("segments", "skipped", REASON)],
            "summary": [
                {"id": "graceful-close", "runs": 1, "passed": 1, "failed": 0, "skipped": 0,
                 "median_s": 0.5, "verdicts": {"C02": "confirmed"}, "mode": "", "reason": ""},
                {"id": "half-close", "runs": 1, "passed": 1, "failed": 0, "skipped": 0,
                 "median_s": 0.5, "verdicts": {"C09": "confirmed"}, "mode": "", "reason": ""},
                {"id": "segments", "runs": 1, "passed": 0, "failed": 0, "skipped": 1,
                 "median_s": None, "verdicts": {}, "mode": "", "reason": REASON}]}


def test_a_skipped_runs_reason_is_drawn_whole() -> None:
    page = html.render(_run())
    row = next(r for r in page.split("<tr>") if r.startswith('<td><a href="#scenario-segments"'))
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[3] == html.text(REASON)
    assert "needs root (CAP_NET_RAW: segments on lo), see <code>tcplab doctor</code>" in cells[3]
    assert "&nbsp;" not in cells[3]


def test_contents_and_claims_link_to_each_scenario_section() -> None:
    page = html.render(_run())
    sections = re.findall(r'<section class="scenario" id="([^"]+)">', page)
    assert sections == ["scenario-graceful-close", "scenario-half-close", "scenario-segments"]
    contents = page[page.index('<nav id="contents">'):page.index("</nav>")]
    assert all(f'href="#{s}"' in contents for s in sections)
    claims = page[page.index('<h2 id="claims">'):page.index('<h2 id="scenarios">')]
    assert '<a href="#scenario-graceful-close">graceful-close</a>' in claims
    assert '<a href="#scenario-half-close">half-close</a>' in claims
    for target in re.findall(r'href="#([^"]+)"', page):
        assert f'id="{target}"' in page, target


def test_diagrams_fold_and_say_what_they_hold() -> None:
    """Each diagram sits in a <details> (no script) whose line names the connection and its
    size; the verdicts stay outside it, visible; the Markdown folds its diagrams the same way."""
    page = html.render(_run())
    section = page[page.index('id="scenario-graceful-close"'):page.index('id="scenario-half-close"')]
    assert section.count("<details") == 2 and "<script" not in page
    assert re.search(r"<summary>Diagram: connection .*\(\d+ steps, 0 segments captured\)", section)
    assert section.index("C02") < section.index("<details")
    md = markdown.render(_run())
    assert md.count("<details>") == 3 and md.count("```mermaid") == 3


def test_code_spans_and_the_legend_once() -> None:
    page = html.render(_run())
    assert "the <code>FIN</code> came first" in page and "`FIN`" not in page
    assert page.count(escape(diagram.LEGEND)) == 1
    assert page.count("<figure>") == 3


def test_unexpected_shapes_are_one_line_and_exit_2(tmp_path: Path) -> None:
    shapes: list[object] = [
        [1, 2], {"scenarios": [1]}, {"scenarios": [{"id": "x"}]},
        {"scenarios": [], "summary": [{"id": "x"}]},
        {"scenarios": [{"id": "x", "title": "t", "claims": [], "status": "passed",
                        "connections": [{"timeline": 5}]}]},
    ]
    for i, shape in enumerate(shapes):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(shape))
        done = subprocess.run([sys.executable, "-m", "tcplab", "report", str(path), "--out",
                               str(tmp_path / f"out{i}")], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 2, (shape, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr


def test_no_renderer_splits_text_again() -> None:
    """Renderers format the model's fields; none splits joined text (another renderer's or
    the file's): the one ``.split(`` left is the backticks of a judge's own summary."""
    src = ROOT / "src" / "tcplab"
    files = [*sorted((src / "render").glob("*.py")), src / "report.py", src / "commands" / "report.py"]
    splits = [(f.name, line.strip()) for f in files for line in f.read_text().splitlines()
              if ".split(" in line]
    assert splits == [("html.py", 'parts = value.split("`")  # the model\'s own text, split '
                                  "before any HTML is written")], splits

"""REPORT.md, and the summary that goes to a CI job's summary ($GITHUB_STEP_SUMMARY).

Tables of the summary and the claims, then per scenario its verdicts and a sequence diagram
per connection in Mermaid (GitHub renders it), each folded in ``<details>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from tcplab import diagram
from tcplab.render import (
    DRAWN,
    NO_DIAGRAM,
    drawn,
    first_line,
    headline,
    kind,
    libraries,
    median,
    mode,
    outcome,
)
from tcplab.render import sections_by_id as by_id
from tcplab.results import Run, Section


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def summary(run: Run) -> str:
    """The summary and claims tables: the head of REPORT.md, and the CI job summary."""
    sections = by_id(run)
    lines = [f"## tcplab run {run.run_id}", "", headline(run) + ".", ""]
    lines += _table(
        ("scenario", "outcome", "claims", "verdicts", "median", "mode"),
        [(r.id, outcome(r), ", ".join(sections[r.id].claims if r.id in sections else ()),
          ", ".join(f"{c} {'/'.join(v)}" for c, v in r.verdicts) or (r.reason or "-"),
          median(r), mode(r, sections.get(r.id))) for r in run.summary])
    lines += ["", "### Claims", ""]
    lines += _table(("claim", "verdict", "scenarios", "evidence"),
                    [(c.claim, "/".join(c.verdicts) or c.status, ", ".join(c.scenarios),
                      c.evidence) for c in run.claims])
    return "\n".join(lines) + "\n"


def _section(section: Section) -> list[str]:
    status = f"Status: **{section.status}**"
    if section.reason:
        status += f" ({first_line(section.reason)})"
    lines = [f"### {section.id}", "", section.title, "",
             f"{status} · {section.mode or '-'} · {section.observation or '-'}"
             + (f" · {libraries(section)}" if section.libraries else ""), ""]
    lines += [f"- **{f.claim} {f.verdict}**: {f.summary}" for f in section.findings]
    if section.findings:
        lines.append("")
    if not section.connections:
        lines += [NO_DIAGRAM, ""]
    for evidence in drawn(section):
        conn = evidence.data
        traced = "; ".join(f"{end} {' -> '.join(path)}" for end, path in evidence.traced_path
                           if path)
        steps = len(diagram.steps(conn, closed_at=evidence.closed_at))
        lines += ["<details>", f"<summary>Diagram: {escape(kind(evidence))} "
                  f"{escape(evidence.client)} ({steps} steps, {evidence.segments} segments "
                  "captured)</summary>", "",
                  f"Traced: {traced or 'no trace (notes are snapshots)'}", "",
                  "```mermaid", diagram.mermaid(conn, closed_at=evidence.closed_at), "```", "",
                  "</details>", ""]
    if len(section.connections) > DRAWN:
        lines += [f"({len(section.connections) - DRAWN} more connection(s) in results.json)", ""]
    return lines


def render(run: Run) -> str:
    """The whole REPORT.md."""
    lines = ["# tcplab report", "", summary(run), "## Scenarios", ""]
    for section in run.sections:
        lines += _section(section)
    return "\n".join(lines)

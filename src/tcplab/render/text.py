"""The report for a terminal: the summary and claims as tables, then per scenario its
status, verdicts and the states each end of its connections was traced through (the
diagrams need a page: see REPORT.md or report.html)."""

from __future__ import annotations

from tcplab import table
from tcplab.render import DRAWN, drawn, first_line, headline, kind, libraries, median, mode, outcome
from tcplab.render import sections_by_id as by_id
from tcplab.results import Run, Section


def _section(section: Section) -> list[str]:
    status = section.status.upper() + (f": {first_line(section.reason)}" if section.reason else "")
    lines = [f"{section.id}: {status} ({section.mode or '-'}; {section.observation or '-'}; "
             f"{section.duration:.2f} s)"]
    if section.libraries:
        lines.append(f"  libraries: {libraries(section)}")
    lines += [f"  {f.claim} {f.verdict}: {f.summary}" for f in section.findings]
    for conn in drawn(section):
        lines.append(f"  {kind(conn)} {conn.client}: {conn.segments} segments captured")
        lines += [f"    {end}: {' -> '.join(path)}" for end, path in conn.traced_path if path]
    if len(section.connections) > DRAWN:
        lines.append(f"  ({len(section.connections) - DRAWN} more connection(s) in results.json)")
    return lines


def render(run: Run) -> str:
    """The whole text report."""
    sections = by_id(run)
    out = [f"tcplab run {run.run_id}: {headline(run)}", "",
           table.render(("scenario", "outcome", "verdicts", "median", "mode"),
                        [(r.id, outcome(r),
                          " ".join(f"{c}={'/'.join(v)}" for c, v in r.verdicts) or r.reason or "-",
                          median(r), mode(r, sections.get(r.id))) for r in run.summary]),
           "", "claims:",
           table.render(("claim", "verdict", "scenarios", "evidence"),
                        [(c.claim, "/".join(c.verdicts) or c.status,
                          ", ".join(c.scenarios) or "-", c.evidence) for c in run.claims]),
           ""]
    for section in run.sections:
        out += [*_section(section), ""]
    return "\n".join(out)

"""report.html: one self-contained page, inline CSS and SVG, no script, no network.

A contents list linking every scenario's section; the summary and claims tables, each
claim linking to the sections of the scenarios that judged it; the diagrams' legend once;
per scenario its verdicts, always shown, and each diagram folded into a ``<details>`` whose
line says what it holds. It can be attached to a CI run and opened anywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from html import escape

from tcplab import diagram
from tcplab.render import (
    DRAWN,
    NO_DIAGRAM,
    drawn,
    first_line,
    kind,
    libraries,
    median,
    mode,
    outcome,
    sections_by_id,
)
from tcplab.results import Run, Section
from tcplab.table import plural
from tcplab.verdict import DISPLAY_ORDER

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#1b262c;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{margin-top:32px;border-bottom:2px solid #eceff1}
h3{margin:28px 0 4px;font-family:ui-monospace,Menlo,Consolas,monospace}
table{border-collapse:collapse;width:100%;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #cfd8dc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eceff1}.muted{color:#607d8b}
.v{display:inline-block;padding:0 6px;border-radius:8px;font-weight:600;font-size:12px}
.v-confirmed{background:#d7f2dc;color:#1b5e20}.v-partly{background:#fff3c4;color:#7a5b00}
.v-refuted{background:#ffd9d6;color:#8e1c12}.v-outdated{background:#e3e0f7;color:#3d2f8f}
.s-failed{color:#b71c1c;font-weight:600}.s-passed{color:#1b5e20}.s-skipped{color:#607d8b}
figure{margin:12px 0 20px;overflow-x:auto}figcaption{font-size:12px;color:#546e7a}
ul.verdicts{padding-left:18px}.nw{white-space:nowrap}
table.claims td:first-child{width:34%}table.claims td:nth-child(2){width:8%;white-space:nowrap}
table.claims td:nth-child(3){width:13%}table.claims .muted{font-size:12px}
table.summary td:first-child{white-space:nowrap}
nav ul ul{columns:3 220px;column-gap:24px}nav li{break-inside:avoid}
section.scenario{border-top:1px solid #eceff1;margin-top:20px}
details{margin:6px 0 10px}summary{cursor:pointer;color:#37474f}
summary:hover{color:#0d47a1}details[open]>summary{margin-bottom:4px}
code{font-size:12px;background:#f3f5f6;padding:0 3px;border-radius:3px;overflow-wrap:anywhere}
td{overflow-wrap:anywhere}
"""


def text(value: str) -> str:
    """Escaped text with Markdown's `code` spans drawn as <code> (judges' summaries use them)."""
    parts = value.split("`")  # the model's own text, split before any HTML is written
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the text as it is
        return escape(value)
    return "".join(f"<code>{escape(p)}</code>" if i % 2 else escape(p)
                   for i, p in enumerate(parts))


def anchor(sid: str) -> str:
    """The id of a scenario's section (what the contents list and the claims table link to)."""
    return "scenario-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in sid)


def _links(names: Sequence[str], known: Collection[str]) -> str:
    """Scenario ids, each a link to its section when this report has one."""
    return ", ".join(f'<a href="#{anchor(n)}">{escape(n)}</a>' if n in known else escape(n)
                     for n in names)


def _verdicts(verdicts: Sequence[str]) -> str:
    return " ".join(f'<span class="v v-{escape(v)}">{escape(v)}</span>' if v in DISPLAY_ORDER
                    else escape(v) for v in verdicts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(section: Section) -> str:
    """One scenario's section: what ran and its verdicts, always shown; each diagram folded
    (a page of 36 scenarios stays a few screens long, and a link lands on the verdicts)."""
    sid, status = section.id, section.status
    out = [f'<section class="scenario" id="{anchor(sid)}">', f"<h3>{escape(sid)}</h3>",
           f"<p>{escape(section.title)}<br>"
           f'<span class="s-{escape(status)}">{escape(status)}</span>'
           + (f" — {text(first_line(section.reason))}" if section.reason else "")
           + f' <span class="muted">· {escape(section.mode or "-")} · '
           f'{escape(section.observation or "-")} · {section.duration:.2f} s'
           + (f" · {escape(libraries(section))}" if section.libraries else "")
           + "</span></p>"]
    if section.findings:
        out.append('<ul class="verdicts">' + "".join(
            f"<li><b>{escape(f.claim)}</b> {_verdicts([f.verdict])} {text(f.summary)}</li>"
            for f in section.findings) + "</ul>")
    if not section.connections:
        out.append(f'<p class="muted nodiagram">{escape(NO_DIAGRAM)}</p>')
    for n, conn in enumerate(drawn(section), 1):
        paths = "; ".join(f"{end}: {' → '.join(path)}" for end, path in conn.traced_path if path)
        steps = len(diagram.steps(conn.data, closed_at=conn.closed_at))
        out.append(f'<details id="{anchor(sid)}-diagram-{n}"><summary>Diagram: {escape(kind(conn))} '
                   f'<span class="nw">{escape(conn.client)}</span> '
                   f'<span class="muted">({steps} steps, {conn.segments} segments '
                   "captured)</span></summary><figure>"
                   + diagram.svg(conn.data, closed_at=conn.closed_at, title=sid)
                   + "<figcaption>"
                   + (f"traced — {escape(paths)}" if paths else "no trace: notes are snapshots")
                   + "</figcaption></figure></details>")
    if len(section.connections) > DRAWN:
        out.append(f'<p class="muted">{len(section.connections) - DRAWN} more connection(s) in '
                   "results.json</p>")
    out.append("</section>")
    return "\n".join(out)


def render(run: Run) -> str:
    """The whole report.html."""
    sections = sections_by_id(run)
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>tcplab report {escape(run.run_id)}</title>",
           f"<style>{CSS}</style></head><body>", "<h1>tcplab report</h1>",
           f'<p class="muted">run {escape(run.run_id)} · Linux {escape(run.kernel)} · '
           f"{plural(len(run.scenarios), 'run')} in {run.wall_time:.1f} s · started "
           f"{escape(run.started)}</p>"]
    out.append('<nav id="contents"><h2>Contents</h2><ul><li><a href="#summary">Summary</a></li>'
               '<li><a href="#claims">Claims</a></li><li><a href="#scenarios">Scenarios</a><ul>'
               + "".join(f'<li><a href="#{anchor(s.id)}">{escape(s.id)}</a> '
                         f'<span class="muted">{escape(s.status)}</span></li>'
                         for s in run.sections)
               + "</ul></li></ul></nav>")
    out.append('<h2 id="summary">Summary</h2>')
    out.append(_table(
        ("scenario", "outcome", "claims", "verdicts", "median", "mode"),
        [(_links([r.id], sections), f'<span class="nw">{escape(outcome(r))}</span>',
          escape(", ".join(sections[r.id].claims if r.id in sections else ())),
          " ".join(f'<span class="nw">{escape(c)}&nbsp;{_verdicts(v)}</span>'
                   for c, v in r.verdicts) or text(r.reason or "-"),
          escape(median(r)), escape(mode(r, sections.get(r.id)))) for r in run.summary],
        css="summary"))
    out.append('<h2 id="claims">Claims</h2>')
    out.append(_table(
        ("claim", "verdict", "scenarios", "evidence"),
        [(escape(c.claim) + (f'<div class="muted">{text(c.statement)}</div>'
                             if c.statement else ""),
          _verdicts(c.verdicts) or escape(c.status), _links(c.scenarios, sections),
          text(c.evidence)) for c in run.claims], css="claims"))
    out.append('<h2 id="scenarios">Scenarios</h2>')
    out.append(f'<p class="muted">How to read the diagrams: {escape(diagram.LEGEND)}. Each '
               "diagram is folded: open it with its line.</p>")
    out += [_section(s) for s in run.sections]
    out.append("</body></html>")
    return "\n".join(out)

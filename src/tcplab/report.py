"""A report people can read, from a results file: REPORT.md and a self-contained report.html.

Both say the same things in the same order: what ran (a summary row per scenario: claims,
verdicts, duration, how it was observed), where each claim stands after this run, and per
scenario a sequence diagram of its connection drawn from the recorded evidence (segments
as arrows, the kernel's transitions as notes). Markdown uses Mermaid, which GitHub
renders; the HTML page draws the same diagrams as inline SVG and needs no network and no
JavaScript, so it can be attached to a CI run and opened anywhere.

Everything here reads the results JSON only: a report can be rebuilt later from a results
file (``tcplab report RESULTS.json``) without running anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from tcplab import diagram, ledger, results
from tcplab.verdict import DISPLAY_ORDER

VERDICT_ORDER = DISPLAY_ORDER
NO_DIAGRAM = ("No diagram: this run's lab recorded no connection (its sockets, if any, lived in "
              "other processes or namespaces, or the run had no trace and no connection).")


def load(path: Path) -> dict[str, Any]:
    """A results file of ``tcplab run`` as its JSON, checked by ``tcplab.results.load`` (a
    ``UsageError`` saying plainly what is wrong with it: one line, never a traceback)."""
    return dict(results.load(path).data)


def _scenario_runs(results: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for run in results.get("scenarios", []):
        runs.setdefault(run["id"], []).append(run)
    return runs


def _representative(runs: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The run to draw: the first passed one that recorded a connection, else the first."""
    for run in runs:
        if run["status"] == "passed" and run.get("connections"):
            return run
    for run in runs:
        if run.get("connections"):
            return run
    return runs[0]


def summary_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per scenario: id, outcome, claims, verdicts, median duration, mode."""
    runs = _scenario_runs(results)
    rows = []
    for row in results.get("summary", []):
        first = runs.get(row["id"], [{}])[0]
        outcome = f"{row['passed']}/{row['runs']} passed"
        if row.get("failed"):
            outcome += f", {row['failed']} failed"
        if row.get("skipped"):
            outcome += f", {row['skipped']} skipped"
        mode = row.get("mode") or "-"
        observation = first.get("observation", "")
        rows.append({
            "id": row["id"],
            "outcome": outcome,
            "claims": ", ".join(first.get("claims", [])),
            "verdicts": ", ".join(f"{c} {v}" for c, v in row.get("verdicts", {}).items())
                        or (row.get("reason") or "-"),
            # the same as data, for renderers that must not split the text above again
            "verdict_pairs": [(str(c), str(v)) for c, v in row.get("verdicts", {}).items()],
            "reason": str(row.get("reason") or ""),
            "duration": "-" if row.get("median_s") is None else f"{row['median_s']:.2f} s",
            "mode": mode + (f"; {observation}" if observation else ""),
        })
    return rows


def claim_rows(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """Claims and where they stand: the results file's ``ledger`` (every claim, C01-C40),
    else ``tcplab.ledger`` built from the file, else the claims that got a verdict."""
    if results.get("ledger"):
        return [{"claim": r["claim"], "verdict": r.get("verdict") or r.get("status", ""),
                 "scenarios": ", ".join(r.get("scenarios", [])), "evidence": r.get("evidence", ""),
                 "statement": r.get("statement", "")} for r in results["ledger"]]
    try:
        rows = ledger.build(results)
        return [{"claim": r.claim.id, "verdict": r.verdict or r.status,
                 "scenarios": ", ".join(r.scenarios), "evidence": r.evidence,
                 "statement": r.claim.statement} for r in rows]
    except Exception:  # a ledger that cannot read this file: fall back, never lose the report
        pass
    found: dict[str, dict[str, Any]] = {}
    for run in results.get("scenarios", []):
        if run["status"] != "passed":
            continue
        for v in run.get("verdicts", []):
            row = found.setdefault(v["claim"], {"verdicts": set(), "scenarios": set(),
                                                "evidence": v["summary"]})
            row["verdicts"].add(v["verdict"])
            row["scenarios"].add(run["id"])
    return [{"claim": c, "verdict": "/".join(sorted(r["verdicts"], key=_verdict_key)),
             "scenarios": ", ".join(sorted(r["scenarios"])), "evidence": r["evidence"],
             "statement": ""} for c, r in sorted(found.items())]


def _verdict_key(v: str) -> int:
    return VERDICT_ORDER.index(v) if v in VERDICT_ORDER else len(VERDICT_ORDER)


def _kind(connection: Mapping[str, Any]) -> str:
    if connection.get("accepted", True):
        return "connection"
    if connection.get("lanes"):
        return f"adopted socket {connection['lanes'].get('client', '')} (traffic after adoption)"
    return "other traffic on the lab's ports (not a lab connection)"


def _closed_at(connection: Mapping[str, Any]) -> float | None:
    value = connection.get("body_ended_s")
    return None if value is None else float(value)


# -- Markdown ---------------------------------------------------------------------------

def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def summary_markdown(results: Mapping[str, Any]) -> str:
    """The summary and claims tables (also what goes to $GITHUB_STEP_SUMMARY)."""
    host = results.get("host", {})
    lines = [f"## tcplab run {results.get('run_id', '')}", "",
             f"Linux {host.get('kernel', '?')}, {len(results.get('scenarios', []))} runs in "
             f"{results.get('wall_time_s', 0):.1f} s, started {results.get('started', '')}.", ""]
    lines += _md_table(("scenario", "outcome", "claims", "verdicts", "median", "mode"),
                       [(r["id"], r["outcome"], r["claims"], r["verdicts"], r["duration"], r["mode"])
                        for r in summary_rows(results)])
    lines += ["", "### Claims", ""]
    lines += _md_table(("claim", "verdict", "scenarios", "evidence"),
                       [(r["claim"], r["verdict"], r["scenarios"], r["evidence"])
                        for r in claim_rows(results)])
    return "\n".join(lines) + "\n"


def markdown(results: Mapping[str, Any]) -> str:
    """The whole REPORT.md."""
    lines = ["# tcplab report", "", summary_markdown(results), "## Scenarios", ""]
    for sid, runs in _scenario_runs(results).items():
        run = _representative(runs)
        lines += [f"### {sid}", "", f"{run.get('title', '')}", "",
                  f"Status: **{run['status']}**"
                  + (f" ({run['reason'].splitlines()[0]})" if run.get("reason") else "")
                  + f" · {run.get('mode') or '-'} · {run.get('observation') or '-'}", ""]
        for v in run.get("verdicts", []):
            lines.append(f"- **{v['claim']} {v['verdict']}**: {v['summary']}")
        if run.get("verdicts"):
            lines.append("")
        connections = run.get("connections", [])
        if not connections:
            lines += [NO_DIAGRAM, ""]
        for conn in diagram.pick(connections):
            kind = _kind(conn)
            traced = "; ".join(f"{end} {' -> '.join(p)}"
                               for end, p in conn.get("traced_path", {}).items() if p)
            steps = len(diagram.steps(conn, closed_at=_closed_at(conn)))
            # folded, as in the HTML page: GitHub renders Mermaid inside <details>
            lines += ["<details>", f"<summary>Diagram: {escape(kind)} {escape(conn['client'])} "
                      f"({steps} steps, {conn.get('segments', 0)} segments captured)</summary>", "",
                      f"Traced: {traced or 'no trace (notes are snapshots)'}", "",
                      "```mermaid", diagram.mermaid(conn, closed_at=_closed_at(conn)), "```", "",
                      "</details>", ""]
        if len(connections) > 2:
            lines += [f"({len(connections) - 2} more connection(s) in results.json)", ""]
    return "\n".join(lines)


# -- HTML -------------------------------------------------------------------------------

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


def _text_html(text: str) -> str:
    """Escaped text with Markdown's `code` spans drawn as <code> (results text uses them)."""
    parts = escape(str(text)).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the text as it is
        return escape(str(text))
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def anchor(sid: str) -> str:
    """The id of a scenario's section (what the contents list and the claims table link to)."""
    return "scenario-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in sid)


def _scenario_links(names: Sequence[str], known: Mapping[str, object]) -> str:
    """Scenario ids, each a link to its section when this report has one."""
    return ", ".join(f'<a href="#{anchor(n)}">{escape(n)}</a>' if n in known else escape(n)
                     for n in names)


def _verdict_html(text: str) -> str:
    return " ".join(
        f'<span class="v v-{escape(part)}">{escape(part)}</span>' if part in VERDICT_ORDER
        else escape(part) for part in text.split("/")
    ) if text else ""


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _scenario_html(sid: str, run: Mapping[str, Any]) -> str:
    """One scenario's section: what ran and its verdicts, always shown; each diagram folded
    into a ``<details>`` whose line says what it holds (a page of 36 scenarios stays a few
    screens long, and a link from the claims table lands on the verdicts)."""
    status = run["status"]
    out = [f'<section class="scenario" id="{anchor(sid)}">', f"<h3>{escape(sid)}</h3>",
           f"<p>{escape(run.get('title', ''))}<br>"
           f'<span class="s-{escape(status)}">{escape(status)}</span>'
           + (f" — {_text_html(run['reason'].splitlines()[0])}" if run.get("reason") else "")
           + f' <span class="muted">· {escape(run.get("mode") or "-")} · '
           f'{escape(run.get("observation") or "-")} · {run.get("duration_s", 0):.2f} s'
           "</span></p>"]
    if run.get("verdicts"):
        out.append('<ul class="verdicts">' + "".join(
            f"<li><b>{escape(v['claim'])}</b> {_verdict_html(v['verdict'])} "
            f"{_text_html(v['summary'])}</li>" for v in run["verdicts"]) + "</ul>")
    connections = run.get("connections", [])
    if not connections:
        out.append(f'<p class="muted nodiagram">{escape(NO_DIAGRAM)}</p>')
    for n, conn in enumerate(diagram.pick(connections), 1):
        paths = "; ".join(f"{end}: {' → '.join(p)}"
                          for end, p in conn.get("traced_path", {}).items() if p)
        steps = len(diagram.steps(conn, closed_at=_closed_at(conn)))
        out.append(f'<details id="{anchor(sid)}-diagram-{n}"><summary>Diagram: {escape(_kind(conn))} '
                   f'<span class="nw">{escape(conn["client"])}</span> '
                   f'<span class="muted">({steps} steps, {conn.get("segments", 0)} segments '
                   "captured)</span></summary><figure>"
                   + diagram.svg(conn, closed_at=_closed_at(conn), title=sid)
                   + "<figcaption>"
                   + (f"traced — {escape(paths)}" if paths else "no trace: notes are snapshots")
                   + "</figcaption></figure></details>")
    if len(connections) > 2:
        out.append(f'<p class="muted">{len(connections) - 2} more connection(s) in '
                   "results.json</p>")
    out.append("</section>")
    return "\n".join(out)


def html(results: Mapping[str, Any]) -> str:
    """The whole report.html: one file, inline CSS and SVG, no script."""
    host = results.get("host", {})
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>tcplab report {escape(results.get('run_id', ''))}</title>",
           f"<style>{CSS}</style></head><body>",
           "<h1>tcplab report</h1>",
           f'<p class="muted">run {escape(results.get("run_id", ""))} · Linux '
           f'{escape(host.get("kernel", "?"))} · {len(results.get("scenarios", []))} runs in '
           f'{results.get("wall_time_s", 0):.1f} s · started {escape(results.get("started", ""))}</p>',
           ]
    sections = _scenario_runs(results)
    out.append('<nav id="contents"><h2>Contents</h2><ul><li><a href="#summary">Summary</a></li>'
               '<li><a href="#claims">Claims</a></li><li><a href="#scenarios">Scenarios</a><ul>'
               + "".join(f'<li><a href="#{anchor(sid)}">{escape(sid)}</a> '
                         f'<span class="muted">{escape(_representative(runs)["status"])}</span></li>'
                         for sid, runs in sections.items())
               + "</ul></li></ul></nav>")
    out.append('<h2 id="summary">Summary</h2>')
    srows = summary_rows(results)
    out.append(_html_table(
        ("scenario", "outcome", "claims", "verdicts", "median", "mode"),
        [(_scenario_links([r["id"]], sections),
          f'<span class="nw">{escape(r["outcome"])}</span>',
          escape(r["claims"]),
          " ".join(f'<span class="nw">{escape(c)}&nbsp;{_verdict_html(v)}</span>'
                   for c, v in r["verdict_pairs"]) or _text_html(r["reason"] or "-"),
          escape(r["duration"]), escape(r["mode"])) for r in srows], css="summary"))
    out.append('<h2 id="claims">Claims</h2>')
    out.append(_html_table(
        ("claim", "verdict", "scenarios", "evidence"),
        [(escape(r["claim"]) + (f'<div class="muted">{_text_html(r["statement"])}</div>'
                                if r["statement"] else ""),
          _verdict_html(r["verdict"]),
          _scenario_links([n for n in r["scenarios"].split(", ") if n], sections),
          _text_html(r["evidence"]))
         for r in claim_rows(results)], css="claims"))
    out.append('<h2 id="scenarios">Scenarios</h2>')
    out.append(f'<p class="muted">How to read the diagrams: {escape(diagram.LEGEND)}. Each '
               "diagram is folded: open it with its line.</p>")
    for sid, runs in sections.items():
        out.append(_scenario_html(sid, _representative(runs)))
    out.append("</body></html>")
    return "\n".join(out)


def write(results: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write REPORT.md and report.html into ``directory``; append the summary to
    ``$GITHUB_STEP_SUMMARY`` when it is set (a GitHub Actions job)."""
    md_path, html_path = directory / "REPORT.md", directory / "report.html"
    md_path.write_text(markdown(results))
    html_path.write_text(html(results))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a") as f:
            f.write(summary_markdown(results))
    return md_path, html_path

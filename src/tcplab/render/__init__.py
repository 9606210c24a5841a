"""Renderers of a run's report, one module per format, each over the typed results model
(``tcplab.results.Run``): ``text`` (a terminal), ``markdown`` (REPORT.md and the CI job
summary), ``html`` (report.html: inline CSS and SVG, no script) and ``json`` (for scripts).

They say the same things in the same order: what ran (a summary row per scenario), where
each claim stands, and per scenario its verdicts and the evidence of its connections. None
reads another's output: each formats the model's fields itself. The few phrases they share
are here, built from fields, so the four cannot drift apart.
"""

from __future__ import annotations

from tcplab import diagram
from tcplab.results import Evidence, Run, ScenarioRow, Section
from tcplab.table import plural

#: Shown where a scenario's run recorded no connection to draw.
NO_DIAGRAM = ("No diagram: this run's lab recorded no connection (its sockets, if any, lived in "
              "other processes or namespaces, or the run had no trace and no connection).")
#: How many connections of a scenario a report draws (``diagram.pick``).
DRAWN = 2


def outcome(row: ScenarioRow) -> str:
    """"3/3 passed", with the failed and skipped runs when there are any."""
    text = f"{row.passed}/{row.runs} passed"
    if row.failed:
        text += f", {row.failed} failed"
    if row.skipped:
        text += f", {row.skipped} skipped"
    return text


def median(row: ScenarioRow) -> str:
    return "-" if row.median_s is None else f"{row.median_s:.2f} s"


def mode(row: ScenarioRow, section: Section | None) -> str:
    """How the scenario ran (host loopback, a private namespace) and what observed it."""
    observation = section.observation if section is not None else ""
    return (row.mode or "-") + (f"; {observation}" if observation else "")


def libraries(section: Section) -> str:
    """The libraries a scenario ran and their versions ("urllib3 2.8.0, requests 2.34.2"), or ""."""
    return ", ".join(f"{name} {version}" for name, version in section.libraries)


def kind(conn: Evidence) -> str:
    """What a connection of the evidence is, for a diagram's heading."""
    if conn.accepted:
        return "connection"
    if conn.lanes:
        return f"adopted socket {conn.lanes.get('client', '')} (traffic after adoption)"
    return "other traffic on the lab's ports (not a lab connection)"


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def sections_by_id(run: Run) -> dict[str, Section]:
    return {s.id: s for s in run.sections}


def headline(run: Run) -> str:
    """The run in one line: kernel, how many runs, how long, when."""
    return (f"Linux {run.kernel}, {plural(len(run.scenarios), 'run')} in {run.wall_time:.1f} s, "
            f"started {run.started}")


def drawn(section: Section) -> list[Evidence]:
    """The connections a report draws for ``section`` (``diagram.pick``: accepted ones with
    segments first, at most ``DRAWN``)."""
    by_data = {id(c.data): c for c in section.connections}
    return [by_data[id(m)] for m in diagram.pick([c.data for c in section.connections], DRAWN)]

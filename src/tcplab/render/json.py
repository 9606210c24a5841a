"""The report for scripts: the model as JSON (``tcplab report --format json``).

Not the results file again: the summary, the claims and per scenario the run drawn, as the
other renderers show them, with verdicts as lists rather than joined text. The connections'
timelines stay in results.json; each connection here has its ends, traced paths and
segment count.
"""

from __future__ import annotations

import json
from typing import Any

from tcplab.results import Evidence, Run, Section


def _evidence(conn: Evidence) -> dict[str, Any]:
    return {"client": conn.client, "server": conn.server, "accepted": conn.accepted,
            "lanes": dict(conn.lanes), "segments": conn.segments,
            "traced_path": {end: list(path) for end, path in conn.traced_path},
            "body_ended_s": conn.closed_at}


def _section(section: Section) -> dict[str, Any]:
    return {"id": section.id, "title": section.title, "claims": list(section.claims),
            "status": section.status, "reason": section.reason, "mode": section.mode,
            "observation": section.observation, "duration_s": section.duration,
            "runs": section.runs, "libraries": dict(section.libraries),
            "verdicts": [{"claim": f.claim, "verdict": f.verdict, "summary": f.summary}
                         for f in section.findings],
            "connections": [_evidence(c) for c in section.connections]}


def render(run: Run) -> str:
    """The report as indented JSON."""
    data = {
        "run_id": run.run_id, "results": str(run.path), "started": run.started,
        "kernel": run.kernel, "wall_time_s": run.wall_time, "runs": len(run.scenarios),
        "summary": [{"id": r.id, "title": r.title, "runs": r.runs, "passed": r.passed,
                     "failed": r.failed, "skipped": r.skipped, "median_s": r.median_s,
                     "verdicts": {c: list(v) for c, v in r.verdicts}, "mode": r.mode,
                     "reason": r.reason} for r in run.summary],
        "claims": [{"claim": c.claim, "statement": c.statement, "status": c.status,
                    "verdicts": list(c.verdicts), "scenarios": list(c.scenarios),
                    "evidence": c.evidence} for c in run.claims],
        "scenarios": [_section(s) for s in run.sections],
    }
    return json.dumps(data, indent=1) + "\n"

"""The claims ledger: where each claim (the articles' forty, then the kernel docs') stands after one run.

Every claim gets exactly one row, whatever happened: the verdict(s) measured in that run
and the scenarios that gave them; or why there is none (no scenario covers it yet, its
scenario was not part of the run, was skipped or failed); or why it cannot be reproduced
on this machine. Nothing is dropped silently, and a verdict only ever comes from the
results file: the ledger never invents one.

Which scenarios cover a claim is read from the scenarios themselves (each ``Scenario``'s
``claims``, and each result's ``claims``), so a new scenario shows up without editing
anything here.

Only runs that *passed* give verdicts. A failed run may have recorded a verdict before an
expectation broke, but its measurement is incomplete; it is reported as a note instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcplab.claims import CLAIMS, Claim
from tcplab.scenario import Scenario
from tcplab.verdict import DISPLAY_ORDER

#: Row statuses, in the words the table prints.
JUDGED = "judged"
UNREPRODUCIBLE = "not reproducible"
SKIPPED = "skipped"
FAILED = "failed"
NOT_RUN = "not run"
NO_SCENARIO = "no scenario"



@dataclass
class Row:
    """One claim's standing in one run."""

    claim: Claim
    status: str
    #: "confirmed", or "confirmed/partly" when runs or scenarios disagree; None if no verdict.
    verdict: str | None = None
    #: How many passed runs gave each verdict.
    counts: dict[str, int] = field(default_factory=dict)
    #: Scenarios that gave the verdict, or that cover the claim but gave none.
    scenarios: list[str] = field(default_factory=list)
    #: One line: the measured summary, or why there is no verdict.
    evidence: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "claim": self.claim.id, "section": self.claim.section, "seeds": list(self.claim.seeds),
            "source": self.claim.source,
            "statement": self.claim.statement, "status": self.status, "verdict": self.verdict,
            "counts": self.counts, "scenarios": self.scenarios, "evidence": self.evidence,
        }


@dataclass
class _Runs:
    """What one scenario id did in the results: runs by status, verdicts of passed runs."""

    claims: set[str] = field(default_factory=set)
    statuses: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    #: claim -> verdict -> passed runs that gave it.
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    #: claim -> verdict -> the summary of the first run that gave it.
    summaries: dict[str, dict[str, str]] = field(default_factory=dict)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _collect(results: Mapping[str, Any] | None) -> dict[str, _Runs]:
    runs: dict[str, _Runs] = {}
    for entry in (results or {}).get("scenarios", []):
        sid = str(entry.get("id", "?"))
        info = runs.setdefault(sid, _Runs())
        status = str(entry.get("status", "failed"))
        info.claims.update(str(c) for c in entry.get("claims", []))
        info.statuses[status] = info.statuses.get(status, 0) + 1
        if status != "passed" and not info.reason:
            info.reason = _first_line(str(entry.get("reason", "")))
        if status != "passed":
            continue
        for v in entry.get("verdicts", []):
            claim, verdict = str(v.get("claim")), str(v.get("verdict"))
            info.claims.add(claim)
            counts = info.counts.setdefault(claim, {})
            counts[verdict] = counts.get(verdict, 0) + 1
            summary = _first_line(str(v.get("summary", "")))
            info.summaries.setdefault(claim, {}).setdefault(verdict, summary)
    return runs


def _order(verdicts: Iterable[str]) -> list[str]:
    rank = {v: i for i, v in enumerate(DISPLAY_ORDER)}
    return sorted(set(verdicts), key=lambda v: (rank.get(v, len(rank)), v))


def _runs_text(statuses: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))


def _judged(claim: Claim, covering: Sequence[str], runs: Mapping[str, _Runs]) -> Row | None:
    counts: dict[str, int] = {}
    summaries: dict[str, str] = {}
    givers: list[str] = []
    notes: list[str] = []
    for sid in covering:
        info = runs.get(sid)
        if info is None:
            continue
        by_verdict = info.counts.get(claim.id)
        if not by_verdict:
            notes.append(f"{sid} gave none: {_runs_text(info.statuses)}"
                         + (f", {info.reason}" if info.reason else ""))
            continue
        givers.append(sid)
        for verdict, n in by_verdict.items():
            counts[verdict] = counts.get(verdict, 0) + n
            summaries.setdefault(verdict, info.summaries[claim.id][verdict])
        if len(info.statuses) > 1 or "passed" not in info.statuses:
            notes.append(f"{sid}: {_runs_text(info.statuses)}")
    if not counts:
        return None
    order = _order(counts)
    if len(order) == 1:
        evidence = summaries[order[0]]
    else:
        evidence = " | ".join(f"{v} ({counts[v]} run{'s' if counts[v] > 1 else ''}): {summaries[v]}"
                              for v in order)
    if notes:
        evidence += f" ({'; '.join(notes)})"
    return Row(claim, JUDGED, "/".join(order), {v: counts[v] for v in order}, givers, evidence)


def build(results: Mapping[str, Any] | None,
          catalog: Mapping[str, Scenario] | None = None) -> list[Row]:
    """One row per claim, C01..C40, from a results JSON (None: nothing was run) and the
    scenario catalog (None: coverage is known only from the results)."""
    runs = _collect(results)
    catalog = catalog or {}
    rows: list[Row] = []
    for claim in CLAIMS:
        in_results = [sid for sid, info in runs.items() if claim.id in info.claims]
        in_catalog = [sid for sid, s in catalog.items()
                      if claim.id in s.claims and sid not in in_results]
        row = _judged(claim, in_results, runs)
        if row is None:
            row = _unjudged(claim, in_results, in_catalog, runs, catalog)
        rows.append(row)
    return rows


def _unjudged(claim: Claim, in_results: Sequence[str], in_catalog: Sequence[str],
              runs: Mapping[str, _Runs], catalog: Mapping[str, Scenario]) -> Row:
    if claim.unreproducible:
        return Row(claim, UNREPRODUCIBLE, scenarios=[*in_results, *in_catalog],
                   evidence=f"not reproducible here: {claim.unreproducible}")
    if in_results:
        parts: list[str] = []
        status = SKIPPED
        for sid in in_results:
            info = runs[sid]
            if "failed" in info.statuses:
                status = FAILED
                parts.append(f"scenario {sid} failed ({info.reason or _runs_text(info.statuses)})")
            elif "skipped" in info.statuses:
                parts.append(f"scenario {sid} was skipped ({info.reason or 'no reason given'})")
            else:  # passed without judging this claim: it was added to the scenario later
                parts.append(f"scenario {sid} passed without a verdict on {claim.id}")
        return Row(claim, status, scenarios=list(in_results),
                   evidence="no verdict in this run: " + "; ".join(parts))
    if in_catalog:
        slow = [sid for sid in in_catalog if catalog[sid].slow]
        hint = f" (slow: run `tcplab run --slow {' '.join(slow)}`)" if slow else ""
        return Row(claim, NOT_RUN, scenarios=list(in_catalog),
                   evidence=f"not run: {', '.join(in_catalog)} not part of this run{hint}")
    return Row(claim, NO_SCENARIO, evidence="no scenario yet")


def to_json(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [row.to_json() for row in rows]


def tally(rows: Sequence[Row]) -> dict[str, int]:
    """How many claims are in each status (and, for judged ones, each verdict)."""
    out: dict[str, int] = {}
    for row in rows:
        key = row.verdict if row.status == JUDGED and row.verdict else row.status
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))

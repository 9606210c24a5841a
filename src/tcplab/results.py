"""The results of runs as every command reads them: one loader, one rule for "the newest run".

``tcplab run`` writes ``<results>/<run id>/results.json``, the run id being
``YYYYMMDD-HHMMSS-PID``. ``claims``, ``states``, ``report`` and ``doctor`` all find and read
runs here, so they cannot disagree about which run is the newest.

The model: a ``Run`` holds its scenario results (``ScenarioResult``), one ``Section`` per
scenario id (the run drawn for it, its ``Finding``s and the ``Evidence`` of its connections),
a ``ScenarioRow`` per scenario id (the summary) and a ``ClaimRow`` per claim (the ledger).
Every renderer (``tcplab.render``) reads this model and nothing else: joined text such as
"confirmed/partly" is split once, here, from the file's own fields, never from something a
renderer wrote.

The rule: only directories named as a run id are runs; the newest is the one with the
latest date and time in its name, then (runs started in the same second) the latest
modified results file. Neither plain name order nor modification time alone will do:
``reference`` sorts after every dated name, and a git checkout gives the committed
``results/reference/results.json`` a fresh mtime. A directory not named as a run
(``reference``, a copy someone made) is read only when it is named explicitly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcplab import ledger, runner
from tcplab.errors import UsageError
from tcplab.scenario import ScenarioResult
from tcplab.verdict import DISPLAY_ORDER

FILE = "results.json"
RUN_ID = re.compile(r"^(?P<when>\d{8}-\d{6})-(?P<pid>\d+)$")


def order(verdicts: Sequence[str]) -> tuple[str, ...]:
    """Verdicts without repeats, in the order every table shows them (``DISPLAY_ORDER``)."""
    rank = {v: i for i, v in enumerate(DISPLAY_ORDER)}
    return tuple(sorted(set(verdicts), key=lambda v: (rank.get(v, len(rank)), v)))


@dataclass(frozen=True)
class Finding:
    """One verdict a scenario's run gave: the claim, the verdict, the judge's summary."""

    claim: str
    verdict: str
    summary: str


@dataclass(frozen=True)
class Evidence:
    """One connection's recorded evidence (``recording.connection_evidence``): its two ends,
    whether the lab accepted it (else ``lanes`` names an adopted socket's ends), the states
    each end was traced through, how many segments were captured, when the scenario's body
    ended (diagrams stop there), and the JSON the diagrams draw from (its timeline)."""

    client: str
    server: str
    accepted: bool
    lanes: Mapping[str, str]
    traced_path: tuple[tuple[str, tuple[str, ...]], ...]
    segments: int
    closed_at: float | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Section:
    """One scenario id of a run, as a report shows it: the run drawn (the first passed one
    that recorded a connection, else the first that recorded one, else the first), its
    findings and evidence, and how many runs of the id there were."""

    id: str
    title: str
    claims: tuple[str, ...]
    status: str
    reason: str
    mode: str
    observation: str
    duration: float
    findings: tuple[Finding, ...]
    connections: tuple[Evidence, ...]
    runs: int
    #: The Python libraries the scenario ran, with their versions (name, version).
    libraries: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ScenarioRow:
    """The summary of one scenario id over its runs (``runner.summarize``)."""

    id: str
    title: str
    runs: int
    passed: int
    failed: int
    skipped: int
    median_s: float | None
    #: per claim, the verdicts its runs gave (ordered): two when runs disagreed.
    verdicts: tuple[tuple[str, tuple[str, ...]], ...]
    mode: str
    #: the first line of why a run did not pass ("" if all passed).
    reason: str


@dataclass(frozen=True)
class ClaimRow:
    """Where one claim stands after the run (``tcplab.ledger``)."""

    claim: str
    statement: str
    status: str
    #: the verdicts measured (ordered), empty when there is none (``status`` says why).
    verdicts: tuple[str, ...]
    scenarios: tuple[str, ...]
    evidence: str


@dataclass(frozen=True)
class Run:
    """One results file of ``tcplab run``: where it is, its id, its scenario results (typed),
    the model the renderers read (sections, summary, claims), and the whole JSON as written."""

    path: Path
    run_id: str
    started: str
    scenarios: tuple[ScenarioResult, ...]
    data: Mapping[str, Any]
    kernel: str = "?"
    wall_time: float = 0.0
    summary: tuple[ScenarioRow, ...] = ()
    claims: tuple[ClaimRow, ...] = ()
    sections: tuple[Section, ...] = ()

    @property
    def name(self) -> str:
        """The run's directory name: what the commands print to say which run they read."""
        return self.path.parent.name


def is_run_dir(directory: Path) -> bool:
    """Is ``directory`` named as ``tcplab run`` names a run?"""
    return RUN_ID.match(directory.name) is not None


def run_files(results_dir: Path) -> list[Path]:
    """Every run's results file under ``results_dir``, newest first (see the module docstring).

    ``results_dir`` may also be one run's directory (it holds a results.json): that run alone.
    """
    if (results_dir / FILE).is_file():
        return [results_dir / FILE]
    found = [p for p in results_dir.glob(f"*/{FILE}") if is_run_dir(p.parent) and p.is_file()]

    def key(path: Path) -> tuple[str, float, str]:
        match = RUN_ID.match(path.parent.name)
        assert match is not None
        return match["when"], path.stat().st_mtime, path.parent.name

    return sorted(found, key=key, reverse=True)


def newest(results_dir: Path) -> Path | None:
    """The newest run's results file under ``results_dir``, or None when there is no run."""
    files = run_files(results_dir)
    return files[0] if files else None


def _scenario(item: object, index: int, path: Path) -> ScenarioResult:
    if not isinstance(item, Mapping):
        raise UsageError(f"{path}: scenarios[{index}] is not an object: not a results file of "
                         "`tcplab run`")
    try:
        result = ScenarioResult.from_json(item)
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: scenarios[{index}] lacks or mangles {exc}: not a results "
                         "file of `tcplab run`") from None
    if not (isinstance(result.id, str) and isinstance(result.status, str)
            and isinstance(result.reason, str)
            and all(isinstance(c, Mapping) for c in result.connections)
            and all(isinstance(v, Mapping) for v in result.verdicts)):
        raise UsageError(f"{path}: scenarios[{index}] has fields of the wrong type: not a "
                         "results file of `tcplab run`")
    return result


def _refuse(path: Path, where: str, what: str) -> UsageError:
    return UsageError(f"{path}: {where} {what}: not a results file of `tcplab run`")


def _evidence(item: Mapping[str, Any], where: str, path: Path) -> Evidence:
    timeline = item.get("timeline", [])
    if not (isinstance(timeline, list) and all(
            isinstance(e, Mapping) and isinstance(e.get("t"), int | float)
            and isinstance(e.get("end"), str) for e in timeline)):
        raise _refuse(path, where, "has a timeline that is not a list of timed events")
    traced = item.get("traced_path", {})
    lanes = item.get("lanes") or {}
    closed = item.get("body_ended_s")
    if not (isinstance(traced, Mapping) and isinstance(lanes, Mapping)
            and all(isinstance(p, list) for p in traced.values())
            and isinstance(item.get("segments", 0), int)
            and (closed is None or isinstance(closed, int | float))):
        raise _refuse(path, where, "has fields of the wrong type")
    return Evidence(
        client=str(item.get("client", "?")), server=str(item.get("server", "?")),
        accepted=bool(item.get("accepted", True)),
        lanes={str(k): str(v) for k, v in lanes.items()},
        traced_path=tuple((str(end), tuple(str(s) for s in states))
                          for end, states in traced.items()),
        segments=int(item.get("segments", 0)),
        closed_at=None if closed is None else float(closed), data=item)


def _section(sid: str, runs: Sequence[ScenarioResult], index: int, path: Path) -> Section:
    drawn = (next((r for r in runs if r.status == "passed" and r.connections), None)
             or next((r for r in runs if r.connections), None) or runs[0])
    where = f"scenarios[{index}] ({sid})"
    return Section(
        id=sid, title=str(drawn.title), claims=tuple(str(c) for c in runs[0].claims),
        status=drawn.status, reason=drawn.reason,
        mode=str(drawn.mode or ""), observation=str(drawn.observation or ""),
        duration=float(drawn.duration),
        findings=tuple(Finding(str(v.get("claim", "?")), str(v.get("verdict", "?")),
                               str(v.get("summary", ""))) for v in drawn.verdicts),
        connections=tuple(_evidence(c, where, path) for c in drawn.connections),
        runs=len(runs),
        libraries=tuple((str(k), str(v)) for k, v in sorted(drawn.libraries.items())))


def _scenario_row(row: Mapping[str, Any]) -> ScenarioRow:
    median = row.get("median_s")
    return ScenarioRow(
        id=str(row["id"]), title=str(row.get("title", "")), runs=int(row["runs"]),
        passed=int(row["passed"]), failed=int(row["failed"]), skipped=int(row["skipped"]),
        median_s=None if median is None else float(median),
        # runner.summarize writes each claim's verdicts joined by "/": the file's format
        verdicts=tuple((str(c), order(str(v).split("/")))
                       for c, v in dict(row.get("verdicts") or {}).items()),
        mode=str(row.get("mode") or ""), reason=str(row.get("reason") or ""))


def _claim_row(row: Mapping[str, Any]) -> ClaimRow:
    counts = row.get("counts") or {}
    verdict = row.get("verdict")
    # ``counts`` has each verdict on its own; "confirmed/partly" is the same, joined
    verdicts = order([str(v) for v in counts]) if counts else (
        order(str(verdict).split("/")) if verdict else ())
    return ClaimRow(claim=str(row["claim"]), statement=str(row.get("statement", "")),
                    status=str(row.get("status", "")), verdicts=verdicts,
                    scenarios=tuple(str(s) for s in row.get("scenarios", [])),
                    evidence=str(row.get("evidence", "")))


def parse(data: object, path: Path) -> Run:
    """A results JSON already read (``path``: where it is, or will be), checked and typed; a
    ``UsageError`` (one line) if it is not of the shape ``tcplab run`` writes."""
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise UsageError(f"{path} has no `scenarios` list: not a results file of `tcplab run`")
    for key, kind in (("summary", list), ("ledger", list), ("host", dict)):
        if key in data and not isinstance(data[key], kind):
            raise UsageError(f"{path}: `{key}` is not a {kind.__name__}: not a results file of "
                             "`tcplab run`")
    if not all(isinstance(row, Mapping) for key in ("summary", "ledger") for row in data.get(key, [])):
        raise UsageError(f"{path}: `summary` or `ledger` holds a row that is not an object")
    scenarios = tuple(_scenario(item, i, path) for i, item in enumerate(data["scenarios"]))
    by_id: dict[str, list[ScenarioResult]] = {}
    first: dict[str, int] = {}
    for i, result in enumerate(scenarios):
        by_id.setdefault(result.id, []).append(result)
        first.setdefault(result.id, i)
    sections = tuple(_section(sid, runs, first[sid], path) for sid, runs in by_id.items())
    try:
        summary = tuple(_scenario_row(r) for r in
                        (data.get("summary") or runner.summarize(scenarios)))
        claims = tuple(_claim_row(r) for r in
                       (data.get("ledger") or ledger.to_json(ledger.build(data))))
        wall_time = float(data.get("wall_time_s", 0.0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{path}: `summary` or `ledger` lacks or mangles {exc}: not a results "
                         "file of `tcplab run`") from None
    host = data.get("host", {})
    return Run(path, str(data.get("run_id") or path.parent.name), str(data.get("started", "")),
               scenarios, data, kernel=str(host.get("kernel", "?")), wall_time=wall_time,
               summary=summary, claims=claims, sections=sections)


def load(path: Path) -> Run:
    """One results file, checked; a ``UsageError`` (one line, exit 2) says what is wrong with
    it: missing, unreadable, not JSON, or JSON of another shape. ``path`` may be a run's
    directory."""
    if path.is_dir():
        path = path / FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: pass a results.json written by `tcplab run`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} is not a readable results file: {exc}") from None
    return parse(data, path)

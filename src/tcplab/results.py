"""The results of runs as every command reads them: one loader, one rule for "the newest run".

``tcplab run`` writes ``<results>/<run id>/results.json``, the run id being
``YYYYMMDD-HHMMSS-PID``. ``claims``, ``states``, ``report`` and ``doctor`` all find and read
runs here, so they cannot disagree about which run is the newest.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tcplab.errors import UsageError
from tcplab.scenario import ScenarioResult

FILE = "results.json"
RUN_ID = re.compile(r"^(?P<when>\d{8}-\d{6})-(?P<pid>\d+)$")


@dataclass(frozen=True)
class Run:
    """One results file of ``tcplab run``: where it is, its id, its scenario results (typed),
    and the whole JSON as written (what the report's renderers take)."""

    path: Path
    run_id: str
    started: str
    scenarios: tuple[ScenarioResult, ...]
    data: Mapping[str, Any]

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
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise UsageError(f"{path} has no `scenarios` list: not a results file of `tcplab run`")
    for key, kind in (("summary", list), ("ledger", list), ("host", dict)):
        if key in data and not isinstance(data[key], kind):
            raise UsageError(f"{path}: `{key}` is not a {kind.__name__}: not a results file of "
                             "`tcplab run`")
    if not all(isinstance(row, Mapping) for key in ("summary", "ledger") for row in data.get(key, [])):
        raise UsageError(f"{path}: `summary` or `ledger` holds a row that is not an object")
    scenarios = tuple(_scenario(item, i, path) for i, item in enumerate(data["scenarios"]))
    return Run(path, str(data.get("run_id") or path.parent.name), str(data.get("started", "")),
               scenarios, data)


def load_newest(results_dir: Path) -> Run | None:
    """The newest run under ``results_dir`` (None when there is none), loaded."""
    path = newest(results_dir)
    return load(path) if path is not None else None

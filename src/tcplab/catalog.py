"""Finding scenarios: every ``*.py`` in a scenarios directory that defines ``scenario``.

The directory is, in order: ``--scenarios DIR``, ``$TCPLAB_SCENARIOS``, ``./scenarios`` when
run from a checkout, and the copy bundled in the installed package.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from tcplab.errors import TcplabError, UsageError
from tcplab.scenario import Scenario

BUNDLED = Path(__file__).parent / "_scenarios"


def scenario_dir(explicit: str | None = None) -> Path:
    """The directory to load scenarios from (see the module docstring)."""
    for candidate in (explicit, os.environ.get("TCPLAB_SCENARIOS")):
        if candidate:
            path = Path(candidate)
            if not path.is_dir():
                raise UsageError(f"scenario directory {path} does not exist: pass an existing --scenarios DIR")
            return path
    local = Path("scenarios")
    if local.is_dir() and any(local.glob("*.py")):
        return local
    if BUNDLED.is_dir():
        return BUNDLED
    raise UsageError("no scenarios found: run from a tcplab checkout or pass --scenarios DIR")


def load(path: Path) -> Scenario:
    """Import one scenario file (without running it) and return its ``scenario``."""
    name = f"tcplab_scenario_{path.stem}"
    # Scenarios may share helpers (``_name.py`` beside them), imported as when run alone.
    if str(path.parent.resolve()) not in sys.path:
        sys.path.insert(0, str(path.parent.resolve()))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken scenario file: one line naming it, not a traceback
        del sys.modules[name]
        raise TcplabError(f"{path} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    scenario = getattr(module, "scenario", None)
    if not isinstance(scenario, Scenario):
        raise UsageError(f"{path} defines no `scenario = Scenario(...)`")
    scenario.path = path.resolve()
    scenario.doc = scenario.doc or (module.__doc__ or "").strip()
    return scenario


def discover(directory: str | None = None) -> dict[str, Scenario]:
    """Every scenario of the directory, by id, in file-name order."""
    found: dict[str, Scenario] = {}
    for path in sorted(scenario_dir(directory).glob("*.py")):
        if path.name.startswith("_"):
            continue
        scenario = load(path)
        if scenario.id in found:
            raise UsageError(f"scenario id {scenario.id!r} is declared twice ({path})")
        found[scenario.id] = scenario
    return found


def select(catalog: dict[str, Scenario], ids: list[str], *, include_slow: bool) -> list[Scenario]:
    """The scenarios named by ``ids`` (all but slow ones if none); unknown ids are a usage error."""
    if not ids:
        return [s for s in catalog.values() if include_slow or not s.slow]
    unknown = [i for i in ids if i not in catalog]
    if unknown:
        raise UsageError(
            f"unknown scenario {', '.join(unknown)}; known: {', '.join(catalog)} (see `tcplab list`)"
        )
    return [catalog[i] for i in dict.fromkeys(ids)]

"""Finding scenarios: every ``*.py`` in a scenarios directory that defines ``scenario``.

Two sources add up. The *bundled* scenarios: the copy in the installed package, or, run
from a checkout, the checkout's ``scenarios/``. The *local* ones, yours: ``$TCPLAB_SCENARIOS``,
else ``./scenarios``. A local scenario whose id repeats a bundled one replaces it; the others
are added (``tcplab list`` says where each came from). ``--scenarios DIR`` is the one
exception: that directory alone, nothing bundled added (a CI job or a test that wants
exactly one set).

A scenario file that cannot be loaded (a syntax error, a failed import, an exception at
import, no ``scenario`` in it) is reported on stderr in one line, naming the file and the
error, and skipped: the other scenarios still list and run.

Loading a scenario runs its code, and CI runs tcplab as root. A directory named on the
command line is the user's choice; one found implicitly (the environment variable, the
current directory, the bundled copy) is loaded only if nobody but the invoking user (or the
user ``sudo`` was invoked by) and root could have written it, as ssh treats its
configuration: the directory, its ancestors (a sticky ``/tmp`` is fine), its files and its
``__pycache__`` must belong to such a user and not be writable by group or others.
Otherwise the command stops, before importing anything, with one line naming the directory
and ``--scenarios``. Which directories were loaded is said once, in one line, on stderr.

Scenario directories are *appended* to ``sys.path`` (their helpers, ``_http`` and the like,
import as when a scenario runs alone), never put in front, where a file could shadow a real
module; a local scenario's path also gets the bundled directory, so a copied scenario still
imports the bundled helpers. What scenarios share beyond that is the public
``tcplab.measure``.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from tcplab.errors import TcplabError, UsageError
from tcplab.scenario import Scenario

BUNDLED = Path(__file__).parent / "_scenarios"
#: The checkout this module was imported from, if it was (``src/tcplab/catalog.py``).
_CHECKOUT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Source:
    """A directory of scenarios: ``origin`` is "bundled" or "local"; ``how`` it was found."""

    directory: Path
    origin: str
    how: str


def bundled_dir() -> Path | None:
    """The bundled scenarios: the installed package's copy, or a checkout's ``scenarios/``."""
    if BUNDLED.is_dir():
        return BUNDLED
    checkout = _CHECKOUT / "scenarios"
    if (_CHECKOUT / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    return None


def sources(explicit: str | None = None) -> list[Source]:
    """Where the scenarios come from, bundled first (see the module docstring).

    Raises ``UsageError`` (exit 2) when there is none, and ``UntrustedDirectory`` for an
    implicitly found directory others could write, before anything is imported.
    """
    if explicit:
        return [Source(_existing(Path(explicit)), "local", "--scenarios")]
    found: list[Source] = []
    bundled = bundled_dir()
    local: Source | None = None
    from_env = os.environ.get("TCPLAB_SCENARIOS")
    if from_env:
        local = Source(_existing(Path(from_env)), "local", "$TCPLAB_SCENARIOS")
    elif Path("scenarios").is_dir() and any(Path("scenarios").glob("*.py")):
        local = Source(Path("scenarios"), "local", "the current directory")
    if local is not None and bundled is not None and _same(local.directory, bundled):
        local = None  # the checkout's own scenarios, run from the checkout: they are the bundled ones
    if local is not None:
        _trusted(local.directory, local.how)
    if bundled is not None:
        how = "the installed package" if bundled == BUNDLED else "the checkout"
        found.append(Source(_trusted(bundled, how), "bundled", how))
    if local is not None:
        found.append(local)
    if not found:
        raise UsageError("no scenarios found: run from a tcplab checkout or pass --scenarios DIR")
    return found


def scenario_dir(explicit: str | None = None) -> Path:
    """The directory scenarios are loaded from: the local one if any, else the bundled one."""
    return sources(explicit)[-1].directory


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _existing(path: Path) -> Path:
    if not path.is_dir():
        raise UsageError(f"scenario directory {path} does not exist: pass an existing --scenarios DIR")
    return path


def trusted_owners() -> set[int]:
    """Users whose files this process may run: root, us, and the user who invoked sudo."""
    owners = {0, os.getuid(), os.geteuid()}
    sudo = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and sudo.isdigit():
        owners.add(int(sudo))
    return owners


def untrusted(directory: Path) -> str | None:
    """Why code in ``directory`` could have been written by someone else, or None.

    Checked: the directory and every ancestor (writable by others only with the sticky
    bit, as ``/tmp``), the files in it and its ``__pycache__`` (what Python imports).
    """
    owners = trusted_owners()
    resolved = directory.resolve()

    def problem(path: Path, *, sticky_ok: bool) -> str | None:
        try:
            info = path.stat()
        except OSError as exc:
            return f"{path} cannot be checked ({exc.strerror})"
        if info.st_uid not in owners:
            return f"{path} belongs to uid {info.st_uid}"
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable and not (sticky_ok and info.st_mode & stat.S_ISVTX):
            return f"{path} is writable by {'others' if info.st_mode & stat.S_IWOTH else 'its group'}"
        return None

    for ancestor in reversed(resolved.parents):
        if found := problem(ancestor, sticky_ok=True):
            return found
    cache = resolved / "__pycache__"
    for path in [resolved, *sorted(resolved.iterdir()),
                 *(sorted(cache.iterdir()) if cache.is_dir() else [])]:
        if found := problem(path, sticky_ok=False):
            return found
    return None


class UntrustedDirectory(UsageError):
    """A scenario directory found implicitly that others could have written: never loaded,
    and never quietly treated as "no scenarios" either."""


def _trusted(directory: Path, where: str) -> Path:
    reason = untrusted(directory)
    if reason is not None:
        raise UntrustedDirectory(f"refusing to load scenarios from {directory} (found via {where}): "
                         f"{reason}; pass --scenarios {directory} to load it anyway")
    return directory


_announced: set[tuple[Path, ...]] = set()


def announce(found: list[Source]) -> None:
    """Say once per process, in one line on stderr, which directories the scenarios come from."""
    resolved = tuple(source.directory.resolve() for source in found)
    if resolved in _announced:
        return
    _announced.add(resolved)
    if len(found) == 1:
        where = str(resolved[0])
    else:
        where = " and ".join(f"{path} ({source.origin})" for path, source in zip(resolved, found, strict=True))
    print(f"tcplab: scenarios from {where}", file=sys.stderr)


def skipped(path: Path, why: str) -> None:
    """One line on stderr for a scenario file that is left out, and why."""
    print(f"tcplab: skipped {path}: {why}", file=sys.stderr)


def import_file(path: Path, name: str) -> ModuleType:
    """Import ``path`` as module ``name`` (a private name: it shadows nothing), its directory
    appended to ``sys.path`` so sibling helpers import. The one loader of scenario code, in
    ``tcplab list`` and in every child (``runner``, ``isolated``). The bundled directory is
    appended after the file's own, so a local scenario imports the bundled helpers too."""
    bundled = bundled_dir()
    for directory in (path.parent, *([bundled] if bundled is not None else [])):
        resolved = str(directory.resolve())
        if resolved not in sys.path:
            sys.path.append(resolved)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load(path: Path) -> Scenario:
    """Import one scenario file (without running it) and return its ``scenario``.

    A file that cannot be imported raises ``TcplabError`` with one line: the file, the
    error, and the line of that file where it happened."""
    try:
        module = import_file(path, f"tcplab_scenario_{path.stem}")
    except UsageError:
        raise
    except Exception as exc:  # a broken scenario file: one line naming it, not a traceback
        raise TcplabError(f"{path} cannot be loaded: {_one_line(exc, path)}") from exc
    scenario = getattr(module, "scenario", None)
    if not isinstance(scenario, Scenario):
        raise UsageError(f"{path} defines no `scenario = Scenario(...)`")
    scenario.path = path.resolve()
    scenario.doc = scenario.doc or (module.__doc__ or "").strip()
    return scenario


def _one_line(exc: BaseException, path: Path) -> str:
    """``SyntaxError: invalid syntax (x.py, line 3)``; for an exception raised while the file
    ran, the last line of ``path`` on its way (``RuntimeError: boom (line 7)``)."""
    text = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    if isinstance(exc, SyntaxError):
        return text
    lines = [lineno for frame, lineno in traceback.walk_tb(exc.__traceback__)
             if Path(frame.f_code.co_filename).resolve() == path.resolve()]
    return f"{text} (line {lines[-1]})" if lines else text


#: Where each loaded scenario file came from (``origin``), by resolved path.
_origins: dict[Path, str] = {}


def origin(scenario: Scenario) -> str:
    """Where ``scenario`` came from, for ``tcplab list``: "bundled", "local", or
    "local, replaces bundled" for a local id that repeats a bundled one."""
    return _origins.get(scenario.path, "local") if scenario.path is not None else "local"


def discover(directory: str | None = None) -> dict[str, Scenario]:
    """Every scenario, by id: the bundled ones in file-name order, then the local ones (a
    local id that repeats a bundled one takes its place). Broken files are reported and
    skipped (``load``), as is a second file declaring an id its own directory already has."""
    found: dict[str, Scenario] = {}
    where = sources(directory)
    announce(where)
    bundled_helpers: set[str] = set()
    for source in where:
        here: dict[str, Scenario] = {}
        for path in sorted(source.directory.glob("*.py")):
            if path.name.startswith("_"):
                if source.origin == "bundled":
                    bundled_helpers.add(path.name)
                elif path.name in bundled_helpers:
                    print(f"tcplab: {path} has a bundled helper's name: which of the two a "
                          "scenario imports would depend on the command; rename it",
                          file=sys.stderr)
                continue
            try:
                scenario = load(path)
            except TcplabError as exc:  # UsageError included: no `scenario` in the file
                skipped(path, str(exc).removeprefix(f"{path} cannot be loaded: "))
                continue
            if scenario.id in here:
                skipped(path, f"scenario id {scenario.id!r} is declared twice in "
                              f"{source.directory} (also {here[scenario.id].path})")
                continue
            here[scenario.id] = scenario
            replaces = source.origin == "local" and scenario.id in found
            _origins[scenario.path or path] = source.origin + (", replaces bundled" if replaces else "")
        found.update(here)
    return found


#: Tags whose scenarios run only when asked for (by id or ``--tag``): the ``realworld``
#: scenarios need the optional libraries and servers of ``tcplab[realworld]``.
OPT_IN_TAGS = frozenset({"realworld"})


def tagged(catalog: dict[str, Scenario], tags: Sequence[str]) -> list[Scenario]:
    """The scenarios carrying any of ``tags`` (all of them if ``tags`` is empty); a tag no
    scenario carries is a usage error."""
    if not tags:
        return list(catalog.values())
    known = {t for s in catalog.values() for t in s.tags}
    unknown = [t for t in tags if t not in known]
    if unknown:
        raise UsageError(f"no scenario is tagged {', '.join(unknown)}; tags: "
                         f"{', '.join(sorted(known)) or 'none'} (see `tcplab list`)")
    return [s for s in catalog.values() if set(s.tags) & set(tags)]


def select(catalog: dict[str, Scenario], ids: list[str], *, include_slow: bool,
           tags: Sequence[str] = (), include_opt_in: bool = False) -> list[Scenario]:
    """The scenarios named by ``ids``, else those tagged with any of ``tags``, else all but
    the opt-in ones (``OPT_IN_TAGS``, unless ``include_opt_in``); slow ones only with
    ``include_slow`` unless named. Unknown ids and tags are usage errors."""
    if not ids:
        pool = tagged(catalog, tags) if tags else [
            s for s in catalog.values() if include_opt_in or not set(s.tags) & OPT_IN_TAGS]
        return [s for s in pool if include_slow or not s.slow]
    unknown = [i for i in ids if i not in catalog]
    if unknown:
        raise UsageError(
            f"unknown scenario {', '.join(unknown)}; known: {', '.join(catalog)} (see `tcplab list`)"
        )
    return [catalog[i] for i in dict.fromkeys(ids)]

"""Finding scenarios: every ``*.py`` in a scenarios directory that defines ``scenario``.

The directory is, in order: ``--scenarios DIR``, ``$TCPLAB_SCENARIOS``, ``./scenarios`` when
run from a checkout, and the copy bundled in the installed package.

Loading a scenario runs its code, and CI runs tcplab as root. A directory named on the
command line is the user's choice; one found implicitly (the environment variable, the
current directory, the bundled copy) is loaded only if nobody but the invoking user (or the
user ``sudo`` was invoked by) and root could have written it, as ssh treats its
configuration: the directory, its ancestors (a sticky ``/tmp`` is fine), its files and its
``__pycache__`` must belong to such a user and not be writable by group or others.
Otherwise the command stops with one line naming the directory and ``--scenarios``. Which
directory was loaded is said once on stderr.

Scenario directories are *appended* to ``sys.path`` (their helpers, ``_leaves`` and the like,
import as when a scenario runs alone), never put in front, where a file could shadow a real
module.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from tcplab.errors import TcplabError, UsageError
from tcplab.scenario import Scenario

BUNDLED = Path(__file__).parent / "_scenarios"


def scenario_dir(explicit: str | None = None) -> Path:
    """The directory to load scenarios from (see the module docstring).

    Raises ``UsageError`` (exit 2) for an implicitly found directory others could write.
    """
    if explicit:
        return _existing(Path(explicit))
    from_env = os.environ.get("TCPLAB_SCENARIOS")
    if from_env:
        return _trusted(_existing(Path(from_env)), "$TCPLAB_SCENARIOS")
    local = Path("scenarios")
    if local.is_dir() and any(local.glob("*.py")):
        return _trusted(local, "the current directory")
    if BUNDLED.is_dir():
        return _trusted(BUNDLED, "the installed package")
    raise UsageError("no scenarios found: run from a tcplab checkout or pass --scenarios DIR")


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


_announced: set[Path] = set()


def announce(directory: Path) -> None:
    """Say once per process, on stderr, which directory the scenarios come from."""
    resolved = directory.resolve()
    if resolved not in _announced:
        _announced.add(resolved)
        print(f"tcplab: scenarios from {resolved}", file=sys.stderr)


def import_file(path: Path, name: str) -> ModuleType:
    """Import ``path`` as module ``name`` (a private name: it shadows nothing), its directory
    appended to ``sys.path`` so sibling helpers import. The one loader of scenario code, in
    ``tcplab list`` and in every child (``runner``, ``isolated``)."""
    directory = str(path.parent.resolve())
    if directory not in sys.path:
        sys.path.append(directory)
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
    """Import one scenario file (without running it) and return its ``scenario``."""
    try:
        module = import_file(path, f"tcplab_scenario_{path.stem}")
    except UsageError:
        raise
    except Exception as exc:  # a broken scenario file: one line naming it, not a traceback
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
    where = scenario_dir(directory)
    announce(where)
    for path in sorted(where.glob("*.py")):
        if path.name.startswith("_"):
            continue
        scenario = load(path)
        if scenario.id in found:
            raise UsageError(f"scenario id {scenario.id!r} is declared twice ({path})")
        found[scenario.id] = scenario
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

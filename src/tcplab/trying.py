"""``tcplab try``: what a set of ``net.*`` settings changes, measured by the scenarios.

An operator's sysctl.conf (or ``KEY=VALUE`` arguments) is parsed and checked here. Then every
scenario that declares it measures one of the keys (``Scenario.measures``: it reads the key's
value from its namespace at run time and scales its waits to it) runs twice, at the same time,
each in a private network namespace (``runner.run_one`` with run-time sysctls): once with every
tried setting merged over the scenario's own, once with the scenario's own settings of the tried
keys removed, so this kernel's namespace defaults apply. What changed is read from the two
results: the measured fields of each verdict's evidence (the judge's measurement) and the run's
notes, side by side. A key no scenario measures is reported as "not measured", never skipped.
The host's ``/proc/sys`` is never written: the only writes happen after
``unshare(CLONE_NEWNET)``, in a child that dies with its namespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tcplab.errors import UsageError
from tcplab.kernel import sysctl
from tcplab.lab import Lab
from tcplab.scenario import Scenario

#: A measured figure that differs by more than this (seconds: absolute + relative) "changed".
TOLERANCE_S, TOLERANCE_REL = 0.5, 0.05
#: Evidence that is not a measurement: how the run went, not what it saw.
NOT_MEASURED = ("traceback", "wait_capped_s")

_LINE = re.compile(r"^\s*-?\s*([A-Za-z0-9_./-]+)\s*=\s*(.*?)\s*$")


# -- what the operator asked ------------------------------------------------------------------


def parse_line(text: str, where: str) -> tuple[str, str] | None:
    """``key = value`` (sysctl.conf spacing, ``/`` or ``.`` separators, a leading ``-``) as
    (dotted key, value); None for a blank or comment line; ``UsageError`` for anything else,
    including a key outside ``net.*`` (tcplab writes only per-namespace sysctls)."""
    stripped = text.strip()
    if not stripped or stripped[0] in "#;":
        return None
    match = _LINE.match(stripped)
    if match is None or not match.group(2):
        raise UsageError(f"{where}: not a `key = value` line: {stripped!r}")
    key = match.group(1).strip("/").replace("/", ".")
    if not key.startswith("net."):
        raise UsageError(f"{where}: {key} is not a net.* setting; tcplab try applies only "
                         "per-namespace net.* sysctls")
    return key, " ".join(match.group(2).strip("\"'").split())


def parse(arguments: Sequence[str]) -> dict[str, str]:
    """The settings of ``arguments`` (KEY=VALUE items and sysctl.conf files, in order; a later
    value of a key wins, as with ``sysctl -p``)."""
    settings: dict[str, str] = {}
    for argument in arguments:
        path = Path(argument)
        if "=" not in argument and path.is_file():
            lines = [(f"{argument}:{n}", line)
                     for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)]
        elif "=" not in argument:
            raise UsageError(f"{argument}: neither a file nor KEY=VALUE")
        else:
            lines = [(repr(argument), argument)]
        for where, line in lines:
            parsed = parse_line(line, where)
            if parsed is not None:
                settings[parsed[0]] = parsed[1]
    if not settings:
        raise UsageError("no setting to try (give KEY=VALUE or a sysctl.conf file)")
    return settings


# -- which scenarios, and a probe of the settings --------------------------------------------


def scenarios_for(catalog: Iterable[Scenario], keys: Sequence[str]) -> list[Scenario]:
    """The scenarios that measure at least one of ``keys`` (``Scenario.measures``)."""
    return [s for s in catalog if set(s.measures) & set(keys)]


async def check(lab: Lab, settings: dict[str, str],
                also: Sequence[str] = ()) -> dict[str, dict[str, str | None]]:
    """Probe: for each setting, its namespace default (None: no such sysctl in a fresh
    namespace) and the kernel's refusal of the tried value, if any (written in this private
    namespace only); for each name in ``also``, its default only."""
    out: dict[str, dict[str, str | None]] = {k: {"default": sysctl.read(k), "error": None}
                                             for k in also}
    for name, value in settings.items():
        default, error = sysctl.read(name), None
        if default is not None:
            try:
                sysctl.path_of(name).write_text(f"{value}\n")
            except OSError as exc:
                error = exc.strerror or str(exc)
        out[name] = {"default": default, "error": error}
    return out


# -- the measured fields of a run ---------------------------------------------------------------


def _flat(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), item, into)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flat(f"{prefix}[{index}]", item, into)
        if not value:
            into[prefix] = None
    else:
        into[prefix] = value


def measured(result: Mapping[str, Any]) -> dict[str, Any]:
    """A scenario result's (``ScenarioResult.to_json``) measured fields, flat: each verdict's
    evidence under its claim (claims judged on the same measurement share one name,
    ``C25/C26``), then the run's notes."""
    groups: list[tuple[list[str], Any]] = []
    for verdict in result.get("verdicts", []):
        for claims, evidence in groups:
            if evidence == verdict.get("evidence"):
                claims.append(verdict["claim"])
                break
        else:
            groups.append(([verdict["claim"]], verdict.get("evidence")))
    out: dict[str, Any] = {}
    for claims, evidence in groups:
        _flat("/".join(claims), evidence, out)
    notes = {k: v for k, v in result.get("evidence", {}).items() if k not in NOT_MEASURED}
    _flat("", notes, out)
    return out


def label(field: str) -> tuple[str, str]:
    """A field's name for people, and its unit: ``C25/C26.orphan_lifetime_s`` ->
    (``C25/C26 orphan lifetime``, ``s``)."""
    unit = "s" if re.search(r"_s(\[\d+\])?$", field) else ""
    text = re.sub(r"_s(\[\d+\])?$", r"\1", field)
    return text.replace(".", " ").replace("_", " "), unit


# -- comparing the two runs -------------------------------------------------------------------


def differs(tried: object, default: object, waited: tuple[float | None, float | None]
            ) -> bool | None:
    """Whether a figure changed: numbers beyond the tolerance, other values when unequal; a
    lifetime that ended in one run (a number) and not in the other (None) changed unless the
    other's wait was cut (``waited``: the cap that cut it) before that number. None: neither
    run saw it (nothing to compare)."""
    if isinstance(tried, int | float) and isinstance(default, int | float):
        return abs(tried - default) > TOLERANCE_S + TOLERANCE_REL * max(abs(tried), abs(default))
    if tried is None and default is None:
        return None
    if tried is not None and default is not None:
        return tried != default
    number, other_cap = (tried, waited[1]) if default is None else (default, waited[0])
    if isinstance(number, int | float) and other_cap is not None:
        return number < other_cap
    return True


def show(value: object, unit: str, waited: float | None) -> str:
    """A figure for people: ``10.0 s``; a lifetime whose wait was cut at ``waited`` s
    (``--max-wait``) and not seen to end: ``> 120 s, still there``; ``none`` (not seen)."""
    if value is None and unit == "s" and waited is not None:
        return "not waited" if waited <= 0 else f"> {waited:.0f} s, still there"
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.1f} {unit}".strip()
    return f"{value} {unit}".strip()


def compare(tried: Mapping[str, Any], default: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Two results of one scenario (with the tried settings, with the defaults), field by
    field, each with an operator's phrase."""
    waited = (tried.get("evidence", {}).get("wait_capped_s"),
              default.get("evidence", {}).get("wait_capped_s"))
    a_fields, b_fields = measured(tried), measured(default)
    rows = []
    for field in dict.fromkeys([*a_fields, *b_fields]):
        a, b = a_fields.get(field), b_fields.get(field)
        name, unit = label(field)
        changed = differs(a, b, waited)
        # a field only one run has (a list one item longer: one more SYN sent) is "none" in
        # the other, not a lifetime cut by the wait
        shown_a = show(a, unit, waited[0]) if field in a_fields else "none"
        shown_b = show(b, unit, waited[1]) if field in b_fields else "none"
        if field not in a_fields or field not in b_fields:
            changed = True
        if changed:
            phrase = f"{name} now {shown_a} (default {shown_b})"
        elif changed is None:
            phrase = ""
        else:
            phrase = f"{name} still {shown_b}"
        rows.append({"figure": field, "label": name, "tried": a, "default": b,
                     "tried_shown": shown_a, "default_shown": shown_b, "changed": changed,
                     "says": phrase})
    return rows

"""``tcplab try``: what each line of a sysctl.conf changes, measured before it is deployed.

The settings are checked (``net.*`` only, each existing in a fresh network namespace and its
value accepted there), then every scenario measuring one of them (``Scenario.measures``) runs
twice at once, each in a private namespace: with the tried settings over its own, and with its
own settings of those keys removed (the namespace defaults). The measured fields of the two
results are shown side by side with what changed; keys that no scenario measures are listed as
"not measured". The host's sysctls are never written.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import trio

from tcplab import catalog, runner, table, trying
from tcplab.errors import EXIT_FAILED, EXIT_OK, Unavailable, UsageError
from tcplab.isolated import run_isolated
from tcplab.scenario import REQUIREMENTS, Scenario

NAME = "try"
HELP = "measure what net.* settings (KEY=VALUE or a sysctl.conf) change, in private namespaces"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("settings", nargs="+", metavar="FILE|KEY=VALUE",
                        help="net.* settings, or sysctl.conf files holding them")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--max-wait", type=_seconds, default=120.0, metavar="S",
                        help="wait at most S seconds for a lifetime to end (default: "
                             "%(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="wait out no lifetime (--max-wait 0): timers only, a few seconds")
    parser.add_argument("--scenarios", metavar="DIR", help="load scenarios from DIR")


def _checked(settings: dict[str, str], answer: dict[str, dict[str, str | None]]) -> None:
    """One line for the first setting a fresh namespace lacks or whose value it refuses."""
    for key, value in settings.items():
        found = answer[key]
        if found["default"] is None:
            raise UsageError(f"{key}: no such sysctl in a fresh network namespace "
                             f"(Linux {platform.release()})")
        if found["error"]:
            raise UsageError(f"{key} = {value}: refused by the kernel ({found['error']})")


async def _run(settings: dict[str, str], scenarios: list[Scenario], max_wait: float,
               say: Any) -> dict[str, Any]:
    answer = await run_isolated("tcplab.trying", "check", settings=settings, seconds=15.0)
    _checked(settings, answer)
    defaults = {k: answer[k]["default"] for k in settings}
    say(f"tcplab try: {len(settings)} setting(s), {len(scenarios)} scenario(s), each run twice "
        "(tried, defaults) in private network namespaces; a lifetime is waited at most "
        f"{max_wait:.0f} s (--max-wait)")
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    # Tried: every setting over the scenario's own. Defaults: its own settings of the tried
    # keys removed, so the namespace's default applies (the others it needs stay).
    sides: dict[str, dict[str, str | None]] = {
        "tried": dict(settings), "default": dict.fromkeys(settings)}

    async def one(scenario: Scenario, side: str) -> None:
        result = await runner.run_one(scenario, sysctls=sides[side], max_wait=max_wait)
        runs[scenario.id, side] = result.to_json()

    async with trio.open_nursery() as nursery:
        for scenario in scenarios:
            for side in sides:
                nursery.start_soon(one, scenario, side)
    in_force = {(value, defaults[key]) for key, value in settings.items()}
    return {"settings": [_report(key, value, defaults[key], scenarios, runs, in_force)
                         for key, value in settings.items()]}


def _report(key: str, value: str, default: str | None, scenarios: list[Scenario],
            runs: dict[tuple[str, str], dict[str, Any]],
            in_force: set[tuple[str, str | None]]) -> dict[str, Any]:
    item: dict[str, Any] = {"key": key, "value": value, "default": default, "measured": False,
                            "figures": [], "scenarios": [], "claims": [], "errors": []}
    for scenario in scenarios:
        if key not in scenario.measures:
            continue
        item["measured"] = True
        item["scenarios"].append(scenario.id)
        item["claims"].extend(scenario.claims)
        tried, base = runs[scenario.id, "tried"], runs[scenario.id, "default"]
        errors = [f"{scenario.id}, {side} run {r['status']}: {r['reason']}"
                  for side, r in (("tried", tried), ("default", base)) if r["status"] != "passed"]
        if errors:
            item["errors"].extend(errors)
            continue
        for row in trying.compare(tried, base):
            # a tried key's value read back in each run: in force, not an effect
            echo = (str(row["tried"]), str(row["default"])) in in_force
            item["figures"].append({"scenario": scenario.id, **row, "in_force": echo})
    if not item["measured"]:
        item["reason"] = "no scenario measures this key (Scenario.measures)"
    item["says"] = "; ".join(f["says"] for f in item["figures"]
                             if f["changed"] and not f["in_force"])
    return item


def _print(report: dict[str, Any]) -> None:
    for item in report["settings"]:
        print(f"{item['key']} = {item['value']}  (namespace default {item['default']})")
        if not item["measured"]:
            print(f"  not measured: {item['reason']}\n")
            continue
        if item["figures"]:
            rows = [(f["label"], f["tried_shown"], f["default_shown"],
                     "in force" if f["in_force"]
                     else {True: "changed", False: "same", None: ""}[f["changed"]])
                    for f in item["figures"]]
            text = table.render(("measured", "tried", "default", ""), rows)
            print("\n".join("  " + line for line in text.splitlines()))
            print(f"  => {item['says'] or 'no measured figure changed'}")
        for error in item["errors"]:
            print(f"  FAILED {error}")
        print(f"  judged in scenario {', '.join(item['scenarios'])}: claims "
              f"{' '.join(item['claims'])} (`tcplab claims`)\n")
    print(f"measured in private network namespaces in {report['duration_s']:.0f} s; "
          "the host's sysctls were not written")


def execute(args: argparse.Namespace) -> int:
    settings = trying.parse(args.settings)
    if not REQUIREMENTS["root"][0]():
        raise Unavailable("tcplab try applies settings in private network namespaces: "
                          "run as root (CAP_SYS_ADMIN)")
    started = time.monotonic()
    max_wait = 0.0 if args.quick else args.max_wait

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    scenarios = trying.scenarios_for(catalog.discover(args.scenarios).values(), list(settings))
    report = trio.run(_run, settings, scenarios, max_wait, say)
    report["duration_s"] = round(time.monotonic() - started, 1)
    report["quick"] = bool(args.quick)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print(report)
    failed = any(item["errors"] for item in report["settings"])
    return EXIT_FAILED if failed else EXIT_OK

"""``tcplab try``: what each line of a sysctl.conf changes, measured before it is deployed.

The settings are checked (``net.*`` only, each existing in a fresh network namespace and its
value accepted there), then every measure concerning them (``tcplab.trying.MEASURES``) runs in
two fresh namespaces at once: with all the tried settings, and with none. The figures are shown
side by side with what changed; keys that no measure covers are listed as "not measured". The
host's sysctls are never written. How long it will take is said before it starts.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import trio

from tcplab import table, trying
from tcplab.errors import EXIT_FAILED, EXIT_OK, Unavailable, UsageError
from tcplab.isolated import run_isolated
from tcplab.scenario import REQUIREMENTS

NAME = "try"
HELP = "measure what net.* settings (KEY=VALUE or a sysctl.conf) change, in private namespaces"
#: Seconds a probe child may take beyond its own waits before it is given up.
PROBE_MARGIN_S = 30.0


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
                        help="timers only: wait out no lifetime (a few seconds)")


def _checked(settings: dict[str, str], answer: dict[str, dict[str, str | None]]) -> None:
    """One line for the first setting a fresh namespace lacks or whose value it refuses."""
    for key, value in settings.items():
        found = answer[key]
        if found["default"] is None:
            raise UsageError(f"{key}: no such sysctl in a fresh network namespace "
                             f"(Linux {platform.release()})")
        if found["error"]:
            raise UsageError(f"{key} = {value}: refused by the kernel ({found['error']})")


async def _run(settings: dict[str, str], max_wait: float, say: Any) -> dict[str, Any]:
    measures = trying.measures_for(list(settings))
    waits_on = sorted({k for m in measures for k in m.waits_on} - set(settings))
    answer = await run_isolated("tcplab.trying", "check", settings=settings, also=waits_on,
                                seconds=15.0)
    _checked(settings, answer)
    defaults = {k: answer[k]["default"] for k in [*settings, *waits_on]}
    tried = {**defaults, **settings}
    waits = {m.probe: (min(max_wait, m.needed(tried, list(settings))),
                       min(max_wait, m.needed(defaults, list(settings))))
             for m in measures}
    longest = max((max(w) for w in waits.values()), default=0.0)
    capped = any(m.needed(v, list(settings)) > max_wait > 0
                 for m in measures for v in (tried, defaults))
    say(f"tcplab try: {len(settings)} setting(s), {len(measures)} measure(s), each in two fresh "
        f"network namespaces (tried, defaults); about {longest + trying.OVERHEAD_S:.0f} s"
        + (f" (lifetimes waited at most {max_wait:.0f} s: --max-wait)" if capped else ""))
    runs: dict[tuple[str, str], dict[str, Any]] = {}

    async def one(measure: trying.Measure, side: str) -> None:
        wait = waits[measure.probe][0 if side == "tried" else 1]
        try:
            runs[measure.probe, side] = await run_isolated(
                "tcplab.trying", measure.probe, sysctls=settings if side == "tried" else {},
                seconds=wait + PROBE_MARGIN_S, wait=wait)
        except Exception as exc:  # a failed probe is reported for its keys, not lost
            runs[measure.probe, side] = {"error": str(exc).splitlines()[0]}

    async with trio.open_nursery() as nursery:
        for measure in measures:
            for side in ("tried", "default"):
                nursery.start_soon(one, measure, side)
    return {"settings": [_report(key, value, defaults[key], measures, runs)
                         for key, value in settings.items()]}


def _report(key: str, value: str, default: str | None, measures: list[trying.Measure],
            runs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    item: dict[str, Any] = {"key": key, "value": value, "default": default, "measured": False,
                            "figures": [], "scenarios": [], "claims": [], "errors": []}
    for measure in measures:
        if key not in measure.keys:
            continue
        item["measured"] = True
        item["scenarios"].append(measure.scenario)
        item["claims"].extend(measure.claims)
        tried, base = runs[measure.probe, "tried"], runs[measure.probe, "default"]
        errors = [f"{side} run: {r['error']}" for side, r in (("tried", tried), ("default", base))
                  if "error" in r]
        if errors:
            item["errors"].extend(errors)
            continue
        item["figures"].extend(trying.compare(measure, key, tried, base))
    if not item["measured"]:
        item["reason"] = "no measure of tcplab try covers this key"
    item["says"] = "; ".join(f["says"] for f in item["figures"] if f["says"])
    return item


def _print(report: dict[str, Any]) -> None:
    for item in report["settings"]:
        print(f"{item['key']} = {item['value']}  (namespace default {item['default']})")
        if not item["measured"]:
            print(f"  not measured: {item['reason']}\n")
            continue
        if item["figures"]:
            rows = [(f["label"], f["tried_shown"], f["default_shown"],
                     {True: "changed", False: "same", None: ""}[f["changed"]])
                    for f in item["figures"]]
            text = table.render(("measured", "tried", "default", ""), rows)
            print("\n".join("  " + line for line in text.splitlines()))
            print(f"  => {item['says'] or 'only lifetimes tell, and none was waited (--quick)'}")
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

    report = trio.run(_run, settings, max_wait, say)
    report["duration_s"] = round(time.monotonic() - started, 1)
    report["quick"] = bool(args.quick)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        _print(report)
    failed = any(item["errors"] for item in report["settings"])
    return EXIT_FAILED if failed else EXIT_OK

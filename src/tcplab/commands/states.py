"""``tcplab states``: the eleven states, who holds each one, and what the last run saw."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tcplab import table
from tcplab.errors import EXIT_FAILED, EXIT_OK, UsageError
from tcplab.holding import HOLDERS, Episode, Observation, holder_ids, observations
from tcplab.results import newest, run_files

NAME = "states"
HELP = "each TCP state: the scenario holding it, how, and what the newest results observed"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="read the runs DIR/<run id>/results.json, newest first; or one run's "
                             "directory (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 unless every state was observed held")


def _socket(sock: dict[str, Any] | None) -> str:
    if not sock:
        return "gone"
    timer = sock.get("timer", {})
    if sock.get("source") in ("trace", "capture"):  # a transition newer than its last snapshot
        return f"{sock['state']} ({sock['source']})"
    parts = [str(sock["state"]), f"q={sock.get('recv_q', 0)}/{sock.get('send_q', 0)}"]
    if timer.get("kind", "off") != "off":
        parts.append(f"timer={timer['kind']},{timer.get('remaining_s', 0):.3f}s,{timer.get('fired', 0)}")
    if sock.get("fd_only"):
        parts.append("fd-only")
    return " ".join(parts)


def _held(episode: Episode) -> str:
    return ("≥" if episode.open_ended else "") + f"{episode.held:.2f}"


def _row(obs: Observation | None, state: str) -> tuple[str, ...]:
    if obs is None:
        ids = " or ".join(h.scenario for h in HOLDERS[next(s for s in HOLDERS if s.value == state)])
        return (state, "-", "-", "not run", "", "", f"run `tcplab run {ids}`")
    ep = obs.episode
    if ep is None:
        return (state, obs.holder.scenario, obs.holder.how, f"not seen ({obs.status})", "", "", "")
    others = "; ".join(f"{label}: {_socket(sock)}" for label, sock in ep.peers.items())
    return (state, obs.holder.scenario, obs.holder.how, _held(ep), f"{ep.end}: {_socket(ep.socket)}",
            others, obs.run_file.parent.name)


def _to_json(obs: Observation | None) -> dict[str, Any] | None:
    if obs is None:
        return None
    ep = obs.episode
    return {
        "scenario": obs.holder.scenario, "how": obs.holder.how, "status": obs.status,
        "mode": obs.mode, "results": str(obs.run_file),
        "observed": None if ep is None else {
            "end": ep.end, "from_s": ep.start, "held_s": round(ep.held, 6),
            "held_at_least": ep.open_ended, "socket": ep.socket, "peers": ep.peers,
        },
    }


def execute(args: argparse.Namespace) -> int:
    results = Path(args.results)
    if not results.is_dir():
        raise UsageError(f"no results directory {results}: run `tcplab run` first or pass --results DIR")
    found = observations(run_files(results))
    latest = newest(results)
    if args.json:
        print(json.dumps({"newest_run": str(latest) if latest else None,
                          "states": {s.value: _to_json(o) for s, o in found.items()}}, indent=1))
    else:
        rows = [_row(o, s.value) for s, o in found.items()]
        print(table.render(("state", "scenario", "held by", "held s", "end seen", "other ends", "run"),
                           rows))
        print(f"\nnewest run: {latest.parent.name if latest else 'none'} "
              f"(older runs fill in states it did not hold)")
        missing = [s.value for s, o in found.items() if o is None or o.episode is None]
        if missing:
            print(f"\nnot observed: {', '.join(missing)} (scenarios: {' '.join(holder_ids())})")
    complete = all(o is not None and o.episode is not None for o in found.values())
    return EXIT_FAILED if args.check and not complete else EXIT_OK

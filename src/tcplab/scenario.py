"""Declaring a scenario, and running one in this process.

A scenario is a module in ``scenarios/`` that defines ``scenario = Scenario(...)`` and an
async body taking the ``Lab`` and the run's ``Verdicts``. It reads top to bottom like the
paragraph it reproduces; its module docstring says which paragraph.

``run_in_process`` is the one place where a scenario runs: ``python scenarios/x.py`` calls
it directly, and ``tcplab run`` starts that same script as a child process per run (so a
namespaced scenario gets its own network namespace, and a crash or leak cannot spill into
another scenario).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import trio

from tcplab.errors import EXIT_FAILED, EXIT_OK, Unavailable
from tcplab.expect import ExpectationFailed
from tcplab.kernel import netns, sysctl
from tcplab.lab import Lab
from tcplab.verdict import Verdicts

Body = Callable[[Lab, Verdicts], Awaitable[None]]
Status = Literal["passed", "failed", "skipped"]

CAP_SYS_ADMIN = 21


def has_capability(bit: int) -> bool:
    """True if this process holds the capability in its effective set.

    Root in a container without CAP_SYS_ADMIN cannot make a network namespace; checking the
    capability, not the uid, says so before the scenario starts.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        pass
    return False


#: What a scenario may require, and how to tell whether this machine has it.
REQUIREMENTS: dict[str, tuple[Callable[[], bool], str]] = {
    "root": (
        lambda: os.geteuid() == 0 and has_capability(CAP_SYS_ADMIN),
        "needs root with CAP_SYS_ADMIN (network namespaces, tracefs, raw packets): run as root",
    ),
}


@dataclass
class Scenario:
    """A reproducible behaviour: its id, title, the claims it judges, what it needs."""

    id: str
    title: str
    claims: tuple[str, ...]
    requires: tuple[str, ...] = ()
    #: net.* sysctls to set; a scenario with any runs in a private network namespace (root).
    sysctls: Mapping[str, str | int] = field(default_factory=dict)
    #: run in a private network namespace even without sysctls (isolated counters).
    private_netns: bool = False
    timeout: float = 30.0
    #: slow scenarios (waiting out real kernel timers) run only when asked for.
    slow: bool = False
    doc: str = ""
    path: Path | None = None
    _body: Body | None = None

    def body(self, fn: Body) -> Body:
        """Decorator: the async function that drives the lab and records verdicts."""
        self._body = fn
        return fn

    @property
    def needs_netns(self) -> bool:
        return self.private_netns or bool(self.sysctls)

    def requires_all(self) -> list[str]:
        """Declared requirements plus those implied (a private namespace needs root)."""
        return sorted(set(self.requires) | ({"root"} if self.needs_netns else set()))

    def unmet(self) -> str | None:
        """Why this machine can't run the scenario, or None."""
        for name in self.requires_all():
            check, reason = REQUIREMENTS.get(name, (lambda: False, f"needs {name}, unknown here"))
            if not check():
                return reason
        return None

    def main(self) -> None:
        """Entry point of ``python scenarios/<name>.py``: run once, print, exit 0 or 1."""
        parser = argparse.ArgumentParser(description=f"{self.id}: {self.title}")
        parser.add_argument("--json", metavar="FILE", help="write the result as JSON to FILE")
        parser.add_argument("--quiet", action="store_true", help="print nothing (with --json)")
        args = parser.parse_args()
        try:
            result = run_in_process(self)
        except KeyboardInterrupt:
            print(f"{self.id}: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        if args.json:
            Path(args.json).write_text(json.dumps(result.to_json(), indent=1))
        if not args.quiet:
            print(result.render())
        raise SystemExit(EXIT_FAILED if result.status == "failed" else EXIT_OK)


@dataclass
class ScenarioResult:
    """One run of one scenario: what happened, what it judged, and the evidence."""

    id: str
    title: str
    claims: tuple[str, ...]
    status: Status
    reason: str = ""
    duration: float = 0.0
    mode: str = ""
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    timelines: list[list[dict[str, Any]]] = field(default_factory=list)
    sysctls: dict[str, str | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "claims": list(self.claims), "status": self.status,
            "reason": self.reason, "duration_s": round(self.duration, 4), "mode": self.mode,
            "verdicts": self.verdicts, "evidence": self.evidence, "timelines": self.timelines,
            "sysctls": self.sysctls,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioResult:
        return cls(
            id=data["id"], title=data["title"], claims=tuple(data["claims"]), status=data["status"],
            reason=data.get("reason", ""), duration=data.get("duration_s", 0.0),
            mode=data.get("mode", ""), verdicts=list(data.get("verdicts", [])),
            evidence=dict(data.get("evidence", {})), timelines=list(data.get("timelines", [])),
            sysctls=dict(data.get("sysctls", {})),
        )

    def render(self) -> str:
        lines = [f"{self.id}: {self.status.upper()} in {self.duration:.2f} s ({self.mode})"]
        if self.reason:
            lines.append(f"  {self.reason}")
        for v in self.verdicts:
            lines.append(f"  {v['claim']}: {v['verdict']:<9} {v['summary']}")
        return "\n".join(lines)


def _mode(scenario: Scenario, namespace: str | None) -> str:
    if namespace is None:
        return "host loopback"
    settings = ", ".join(f"{k}={v}" for k, v in scenario.sysctls.items())
    return f"private netns {namespace}" + (f" ({settings})" if settings else "")


def run_in_process(scenario: Scenario) -> ScenarioResult:
    """Run ``scenario`` once in this process and return its result; never raises but for Ctrl-C.

    A scenario needing a private namespace moves this whole process into one, so call this
    only in a process dedicated to the run (a scenario script, a runner's child).
    """
    base = ScenarioResult(scenario.id, scenario.title, scenario.claims, "skipped")
    reason = scenario.unmet()
    if reason:
        base.reason = reason
        return base
    namespace = None
    if scenario.needs_netns:
        try:
            namespace = netns.enter_private_netns(scenario.sysctls)
        except Unavailable as exc:
            base.reason = str(exc)
            return base
    base.mode = _mode(scenario, namespace)
    base.sysctls = sysctl.read_watched()
    return trio.run(_run_body, scenario, base)


async def _run_body(scenario: Scenario, result: ScenarioResult) -> ScenarioResult:
    assert scenario._body is not None, f"{scenario.id} has no @scenario.body"
    verdicts = Verdicts(scenario.claims)
    started = time.monotonic()
    lab = Lab()
    try:
        async with lab:
            with trio.fail_after(scenario.timeout):
                await scenario._body(lab, verdicts)
        missing = verdicts.missing()
        if missing:
            result.status, result.reason = "failed", f"no verdict recorded for {', '.join(missing)}"
        else:
            result.status = "passed"
    except Exception as exc:  # a failure or a crash is a failed run, never a lost one
        result.status, result.reason = "failed", _explain(exc, scenario.timeout)
        if not isinstance(_first_leaf(exc), ExpectationFailed | trio.TooSlowError):
            result.evidence["traceback"] = traceback.format_exc()
    result.duration = time.monotonic() - started
    result.verdicts = [v.to_json() for v in verdicts.items.values()]
    result.evidence.update(verdicts.evidence)
    result.timelines = [conn.timeline.to_json() for conn in lab.connections]
    return result


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups from nurseries."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _explain(exc: BaseException, timeout: float) -> str:
    leaf = _first_leaf(exc)
    if isinstance(leaf, ExpectationFailed):
        return str(leaf)
    if isinstance(leaf, trio.TooSlowError):
        return f"timed out after {timeout} s"
    return f"crashed: {type(leaf).__name__}: {leaf}"

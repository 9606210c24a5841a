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
import dataclasses
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import trio

from tcplab.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Unavailable, first_leaf
from tcplab.expect import ExpectationFailed
from tcplab.kernel import netns, packets, process, sysctl, trace
from tcplab.lab import Lab
from tcplab.recording import Recording, connection_evidence, flow_evidence
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


def _command(name: str) -> tuple[Callable[[], bool], str]:
    """A requirement met when the command ``name`` is on PATH (tools a claim is about)."""
    return (lambda: shutil.which(name) is not None, f"needs the `{name}` command, not installed here")


#: Prefix of a requirement on an installed Python distribution (``"python:urllib3"``): the
#: scenario is skipped without it, and the version it ran with goes into its result.
PYTHON_PACKAGE = "python:"
#: Prefix of a requirement on a program on PATH (``"program:redis-server"``).
PROGRAM = "program:"


def python_package_version(name: str) -> str | None:
    """The installed version of the distribution ``name``, or None if it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _requirement(name: str) -> tuple[Callable[[], bool], str]:
    """How to check the requirement ``name``, and the reason a run is skipped without it."""
    if name.startswith(PYTHON_PACKAGE):
        dist = name.removeprefix(PYTHON_PACKAGE)
        return (lambda: python_package_version(dist) is not None,
                f"needs the Python package {dist}, not installed here "
                "(pip install 'tcplab[realworld]', or `nox -s realworld`)")
    if name.startswith(PROGRAM):
        return _command(name.removeprefix(PROGRAM))
    return REQUIREMENTS.get(name, (lambda: False, f"needs {name}, unknown here"))


#: What a scenario may require, and how to tell whether this machine has it (besides
#: ``python:<distribution>`` and ``program:<command>``).
REQUIREMENTS: dict[str, tuple[Callable[[], bool], str]] = {
    "root": (
        lambda: os.geteuid() == 0 and has_capability(CAP_SYS_ADMIN),
        "needs root with CAP_SYS_ADMIN (network namespaces, tracefs, raw packets): run as root",
    ),
    "trace": (lambda: trace.available() is None, "needs tracefs and root (kernel transitions)"),
    "capture": (lambda: packets.available() is None, "needs root (CAP_NET_RAW: segments on lo)"),
    "postgresql": (  # not on PATH in Debian's package: tcplab.servers finds it
        lambda: importlib.import_module("tcplab.servers").postgres_binaries() is not None,
        "needs PostgreSQL's server (postgres, initdb): apt-get install postgresql",
    ),
    "netstat": _command("netstat"),  # package net-tools
    "lsof": _command("lsof"),
}

#: At most this many connections per run keep their merged timeline in the results file.
MAX_RECORDED_CONNECTIONS = 50


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
    #: run in a private network namespace when root, on the host's loopback otherwise: for
    #: scenarios that work anywhere but measure per-namespace counters exactly when isolated
    #: (the body asks ``tcplab.kernel.netns.private()`` which mode it got).
    netns_if_root: bool = False
    timeout: float = 30.0
    #: trace the kernel's transitions and capture segments when this machine allows it.
    record: bool = True
    #: slow scenarios (waiting out real kernel timers) run only when asked for.
    slow: bool = False
    #: net.* keys whose value the body reads from its namespace at run time (not a constant)
    #: and scales its waits to (``capped``): ``tcplab try`` runs it with a tried value of one.
    measures: tuple[str, ...] = ()
    #: Labels to select scenarios by (``tcplab list --tag``, ``tcplab run --tag``); a tag in
    #: ``catalog.OPT_IN_TAGS`` keeps the scenario out of a run that does not ask for it.
    tags: tuple[str, ...] = ()
    doc: str = ""
    path: Path | None = None
    _body: Body | None = None

    def body(self, fn: Body) -> Body:
        """Decorator: the async function that drives the lab and records verdicts."""
        self._body = fn
        return fn

    async def run_body(self, lab: Lab, verdicts: Verdicts) -> None:
        """Drive ``lab`` with this scenario's body (a scenario may compose others' bodies)."""
        assert self._body is not None, f"{self.id} has no @scenario.body"
        await self._body(lab, verdicts)

    @property
    def needs_netns(self) -> bool:
        return self.private_netns or bool(self.sysctls)

    @property
    def libraries(self) -> tuple[str, ...]:
        """The Python distributions it requires: their versions go into its result."""
        return tuple(r.removeprefix(PYTHON_PACKAGE) for r in self.requires
                     if r.startswith(PYTHON_PACKAGE))

    def requires_all(self) -> list[str]:
        """Declared requirements plus those implied (a private namespace needs root)."""
        return sorted(set(self.requires) | ({"root"} if self.needs_netns else set()))

    def unmet(self) -> str | None:
        """Why this machine can't run the scenario, or None."""
        for name in self.requires_all():
            check, reason = _requirement(name)
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
            raise SystemExit(EXIT_INTERRUPTED) from None
        if args.json:
            Path(args.json).write_text(json.dumps(result.to_json(), indent=1))
        if not args.quiet:
            print(result.render())
            if result.crash_traceback:  # a crash: where it happened, with the failure
                print(result.crash_traceback, file=sys.stderr, end="")
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
    #: which evidence the run had: "snapshots + trace + capture", or "snapshots only (why)".
    observation: str = ""
    #: per connection: its ends, traced paths, segment count, merged timeline (recording.py).
    connections: list[dict[str, Any]] = field(default_factory=list)
    #: How the child process of this run exited when it left no result (the runner's concern).
    exit_status: int | None = None
    #: The version of each Python library the scenario ran (``Scenario.libraries``).
    libraries: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "claims": list(self.claims), "status": self.status,
            "reason": self.reason, "duration_s": round(self.duration, 4), "mode": self.mode,
            "verdicts": self.verdicts, "evidence": self.evidence, "timelines": self.timelines,
            "sysctls": self.sysctls, "observation": self.observation,
            "connections": self.connections, "libraries": self.libraries,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScenarioResult:
        return cls(
            id=data["id"], title=data["title"], claims=tuple(data["claims"]), status=data["status"],
            reason=data.get("reason", ""), duration=data.get("duration_s", 0.0),
            mode=data.get("mode", ""), verdicts=list(data.get("verdicts", [])),
            evidence=dict(data.get("evidence", {})), timelines=list(data.get("timelines", [])),
            sysctls=dict(data.get("sysctls", {})), observation=data.get("observation", ""),
            connections=list(data.get("connections", [])),
            libraries=dict(data.get("libraries", {})),
        )

    @property
    def crash_traceback(self) -> str:
        """The traceback of a run that crashed (not of a failed expectation), else ""."""
        text = self.evidence.get("traceback") if self.status == "failed" else None
        return text if isinstance(text, str) else ""

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


#: This run's limit on a wait for a lifetime (``tcplab try --max-wait``; None: no limit),
#: and whether a wait was cut short by it.
_wait_cap: float | None = None
_wait_cut = False


def capped(seconds: float) -> float:
    """``seconds``, or the run's wait limit if that is shorter. A scenario that measures a key
    (``Scenario.measures``) waits as long as that key's value in force says; ``tcplab try`` runs
    it with an operator's value and limits the wait, and reports what outlived it."""
    global _wait_cut
    if _wait_cap is not None and seconds > _wait_cap:
        _wait_cut = True
        return _wait_cap
    return seconds


def overridden(scenario: Scenario, sysctls: Mapping[str, str | None],
               max_wait: float) -> Scenario:
    """``scenario`` with ``sysctls`` merged over its own (None: drop the scenario's own setting
    of that key, so the namespace default applies), in a private namespace, its time limit
    grown by the waits ``max_wait`` allows (a body waits at most two in a row)."""
    merged = {k: v for k, v in {**scenario.sysctls, **sysctls}.items() if v is not None}
    return dataclasses.replace(scenario, sysctls=merged, private_netns=True,
                               timeout=scenario.timeout + 2 * max_wait)


def run_in_process(scenario: Scenario, *, sysctls: Mapping[str, str | None] | None = None,
                   max_wait: float | None = None) -> ScenarioResult:
    """Run ``scenario`` once in this process and return its result; never raises but for Ctrl-C.

    A scenario needing a private namespace moves this whole process into one, so call this
    only in a process dedicated to the run (a scenario script, a runner's child).
    ``sysctls`` (``tcplab try``) overrides the scenario's own, see ``overridden``; ``max_wait``
    limits the waits of a body that uses ``capped``.
    """
    global _wait_cap
    if sysctls is not None:
        scenario = overridden(scenario, sysctls, max_wait or 0.0)
    _wait_cap = max_wait
    base = ScenarioResult(scenario.id, scenario.title, scenario.claims, "skipped")
    base.libraries = {name: python_package_version(name) or "not installed"
                      for name in scenario.libraries}
    reason = scenario.unmet()
    if reason:
        base.reason = reason
        return base
    namespace = None
    if scenario.needs_netns or (scenario.netns_if_root and REQUIREMENTS["root"][0]()):
        try:
            namespace = netns.enter_private_netns(scenario.sysctls)
        except Unavailable as exc:
            base.reason = str(exc)
            return base
    base.mode = _mode(scenario, namespace)
    base.sysctls = sysctl.read_watched()
    for name in scenario.measures:  # the value each measured key had in this run
        base.sysctls[name] = sysctl.read(name)
    result = trio.run(_run_body, scenario, base)
    if _wait_cut:
        result.evidence["wait_capped_s"] = _wait_cap
    return result


async def _run_body(scenario: Scenario, result: ScenarioResult) -> ScenarioResult:
    verdicts = Verdicts(scenario.claims)
    started = time.monotonic()
    lab = Lab()
    recording = Recording(lab) if scenario.record else None
    body_ended: float | None = None
    # SIGTERM (what a runner sends a run it gives up on, and what the kernel sends when the
    # runner dies: ``process.run_in_child``) cancels the run like a timeout, so the lab and the
    # recording clean up (sockets, tracefs instance); then it ends like Ctrl-C. The handler
    # stays until the recording is closed: a SIGTERM then must not kill us before rmdir.
    terminate = trio.CancelScope()
    try:
        with process.sigterm_cancels(terminate):
            try:
                if recording is not None:
                    recording.open()
                with terminate:
                    async with lab:
                        try:
                            with trio.fail_after(scenario.timeout):
                                await scenario.run_body(lab, verdicts)
                        finally:
                            body_ended = lab.clock()  # what follows is the lab's own cleanup
            finally:
                if recording is not None:
                    recording.close()  # after the lab closed its sockets: their last segments too
        if terminate.cancelled_caught:
            raise KeyboardInterrupt
        missing = verdicts.missing()
        if missing:
            result.status, result.reason = "failed", f"no verdict recorded for {', '.join(missing)}"
        else:
            result.status = "passed"
    except Exception as exc:  # a failure or a crash is a failed run, never a lost one
        result.status, result.reason = "failed", _explain(exc, scenario.timeout)
        if not isinstance(first_leaf(exc), ExpectationFailed | trio.TooSlowError):
            result.evidence["traceback"] = traceback.format_exc()
    result.duration = time.monotonic() - started
    result.verdicts = [v.to_json() for v in verdicts.items.values()]
    result.evidence.update(verdicts.evidence)
    result.timelines = [conn.timeline.to_json() for conn in lab.connections]
    result.observation = recording.mode if recording is not None else "snapshots only (not recorded)"
    result.connections = [connection_evidence(c) for c in lab.connections]
    if recording is not None:
        result.connections += [flow_evidence(f.client, f.timeline, accepted=False, lanes=f.lanes)
                               for f in recording.flows]
    del result.connections[MAX_RECORDED_CONNECTIONS:]
    for item in result.connections:
        item["body_ended_s"] = None if body_ended is None else round(body_ended, 6)
    return result


def _explain(exc: BaseException, timeout: float) -> str:
    leaf = first_leaf(exc)
    if isinstance(leaf, ExpectationFailed):
        return str(leaf)
    if isinstance(leaf, trio.TooSlowError):
        return f"timed out after {timeout} s"
    return f"crashed: {type(leaf).__name__}: {leaf}"

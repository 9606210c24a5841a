"""Classification of each flagged socket, and the result table (Markdown and JSON). Pure.

Input: the runs of each suite, each with the probe's record (outcome per test; each flagged
test's sockets, and where each one went after the flag). Nothing here reads the network or
the kernel: what decides a classification was measured by the probe during the run.

The rule (one per socket, and a test is a real leak if any of its flagged sockets is):

* still held when the session ended, after a ``gc.collect()``: **real** (nothing in the
  suite ever closed it);
* closed only by that final ``gc.collect()``: **real** (no code closed it; it was garbage);
* gone by the time the flag was reported (its inode no longer held): **false**,
  closed within moments of the check;
* closed by a fixture's teardown: **false**, closed by that fixture (of the flagged test, or
  a wider-scoped one torn down after a later test);
* closed by another finalizer pytest ran (a callable registered with
  ``request.addfinalizer``, e.g. ``socket.close``): **false**, closed by that finalizer;
* closed during a test's teardown outside any fixture's teardown: **false**, closed by a
  finalizer the test registered (``request.addfinalizer``) or by its loop running again;
* closed at any other point (a later test's setup, call or function-scoped teardown, or
  between finalizers): **false**, closed by code running beside the tests, that many
  seconds after the flag; the threads alive at the flag that had ended by then are named
  (a server thread of the test that sleeps, then closes its connection).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WITHOUT = "without"
WITH = "with"
FAILED_OUTCOMES = frozenset({"failed", "error"})


@dataclass(frozen=True)
class Closing:
    """Where the probe first saw a flagged socket gone."""

    point: str
    during: str | None = None
    fixture: str | None = None
    scope: str | None = None
    finalizer: str | None = None
    #: The node whose finalizer ran (a fixture's finish or a callable), when one did.
    node: str | None = None
    after_s: float = 0.0
    #: Threads alive when the flag was reported that had ended when it was seen closed.
    threads_ended: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlaggedSocket:
    """One socket of one flag, as the plugin reported it and as the probe followed it."""

    nodeid: str
    fd: int
    local: str
    remote: str
    state: str
    detail: str = ""
    where: tuple[str, ...] = ()
    #: Still held (its inode) when the flag was reported.
    held_at_flag: bool = True
    closing: Closing | None = None
    open_at_end: bool | None = None

    @property
    def four_tuple(self) -> str:
        return f"{self.local} -> {self.remote}"

    @classmethod
    def from_probe(cls, nodeid: str, entry: Mapping[str, Any]) -> FlaggedSocket:
        closing = entry.get("closing")
        return cls(
            nodeid=nodeid, fd=int(entry["fd"]), local=str(entry["local"]),
            remote=str(entry["remote"]), state=str(entry["state"]),
            detail=str(entry.get("detail", "")), where=tuple(entry.get("where", ())),
            held_at_flag=bool(entry.get("held_at_flag", False)),
            closing=None if closing is None else Closing(
                point=str(closing["point"]), during=closing.get("during"),
                fixture=closing.get("fixture"), scope=closing.get("scope"),
                finalizer=closing.get("finalizer"), node=closing.get("node"),
                threads_ended=tuple(closing.get("threads_ended", ())),
                after_s=float(closing.get("after_s", 0.0))),
            open_at_end=entry.get("open_at_end"),
        )


@dataclass(frozen=True)
class Classification:
    """Real leak or false alarm; ``cause`` groups false alarms, ``evidence`` is the detail."""

    real: bool
    cause: str
    evidence: str


#: What a closing point means, in the evidence.
POINTS = {
    "report": "while pytest reported", "setup": "at the setup of", "call": "after the call of",
    "before-teardown": "before the teardown of", "teardown": "during the teardown of",
    "fixture": "at a fixture's teardown in", "finalizer": "at a finalizer of",
}


def _owns(closing: Closing, nodeid: str) -> bool:
    """Whether the teardown that ran when the socket closed can be the flagged test's own.

    Its own test's fixtures and finalizers can; after a later test, only a wider-scoped
    fixture or a finalizer of a node above the test (its class, module, session) can: a
    later test's function-scoped teardown owns nothing of an earlier test, so a close seen
    then was made by something else running at the same time.
    """
    if closing.during is None or closing.during == nodeid:
        return True
    if closing.point == "fixture":
        return (closing.scope or "function") != "function"
    node = closing.node
    return node is not None and (node == "" or nodeid.startswith(node + "::"))


def classify(sock: FlaggedSocket) -> Classification:
    """The rule of the module docstring, applied to one flagged socket."""
    closing = sock.closing
    if not sock.held_at_flag:
        return Classification(False, "closed before the flag was reported",
                              f"fd {sock.fd} {sock.local} was no longer held when the failure "
                              "was reported, moments after the check")
    if closing is None:
        if sock.open_at_end:
            return Classification(True, "still open at session end",
                                  f"fd {sock.fd} {sock.four_tuple} {sock.state}: still held by "
                                  "the process when the session ended (after gc.collect())")
        return Classification(False, "not followed", "the probe recorded no end for it")
    after = f"{closing.after_s:.2f} s after the flag"
    own = closing.during is None or closing.during == sock.nodeid
    if closing.point == "gc-at-end":
        return Classification(True, "closed only by garbage collection at session end",
                              f"fd {sock.fd} {sock.four_tuple} {sock.state}: no code closed it; "
                              "the final gc.collect() did")
    if closing.point == "session-end":
        return Classification(False, "closed at session end",
                              f"closed after the last test's teardown, before pytest's "
                              f"session finish, {after}")
    if closing.point == "fixture" and _owns(closing, sock.nodeid):
        scope = closing.scope or "function"
        if own:
            return Classification(False, f"closed by fixture teardown: {closing.fixture}",
                                  f"closed by the teardown of fixture {closing.fixture} "
                                  f"({scope} scope) of the same test, {after}")
        return Classification(False, f"closed by {scope}-scoped fixture {closing.fixture}",
                              f"closed by the teardown of {scope}-scoped fixture "
                              f"{closing.fixture} after test {closing.during}, {after}")
    if closing.point == "finalizer" and _owns(closing, sock.nodeid):
        whose = "the same test" if own else f"{closing.node or 'the session'}"
        return Classification(False, f"closed by a finalizer: {closing.finalizer}",
                              f"closed by finalizer {closing.finalizer} (registered with "
                              f"request.addfinalizer) in the teardown of {whose}, {after}")
    threads = ", ".join(closing.threads_ended)
    where = f"{POINTS.get(closing.point, closing.point)} {'its own test' if own else 'a later test'}"
    evidence = (f"closed {after}, {where} ({closing.during}), by no teardown of its test or "
                "of a scope above it")
    if threads:
        return Classification(False, "closed later by a thread that ended then",
                              f"{evidence}; threads alive at the flag that had ended by then: "
                              f"{threads}")
    return Classification(False, "closed later, outside its teardown", evidence)


# -- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One pytest run of a suite: the mode, its wall time and the probe's record."""

    suite: str
    mode: str
    index: int
    wall_s: float
    exitstatus: int
    outcomes: Mapping[str, str]
    flagged: Sequence[Mapping[str, Any]] = ()

    def count(self, *outcomes: str) -> int:
        return sum(1 for o in self.outcomes.values() if o in outcomes)

    @property
    def tests(self) -> int:
        return len(self.outcomes)

    @property
    def flagged_ids(self) -> frozenset[str]:
        return frozenset(str(f["nodeid"]) for f in self.flagged)

    def sockets(self) -> list[FlaggedSocket]:
        return [FlaggedSocket.from_probe(str(f["nodeid"]), entry)
                for f in self.flagged for entry in f["sockets"]]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Run:
        probe = record.get("probe") or {}
        return cls(suite=str(record["suite"]), mode=str(record["mode"]),
                   index=int(record["index"]), wall_s=float(record["wall_s"]),
                   exitstatus=int(record.get("exitstatus", probe.get("exitstatus", -1))),
                   outcomes=dict(probe.get("outcomes", {})),
                   flagged=list(probe.get("flagged", [])))


@dataclass
class FlaggedTest:
    """A test flagged in one or more runs, with every flagged socket's classification."""

    nodeid: str
    #: Per with-run that flagged it: whether that run's flag was real (any socket real).
    per_run: dict[int, bool] = field(default_factory=dict)
    #: ``(run index, socket, classification)`` for every flagged socket of every run.
    sockets: list[tuple[int, FlaggedSocket, Classification]] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len(self.per_run)

    @property
    def real(self) -> bool:
        return any(self.per_run.values())

    @property
    def consistent(self) -> bool:
        """The same call in every run it was flagged in."""
        return len(set(self.per_run.values())) <= 1

    def first_run(self) -> list[tuple[FlaggedSocket, Classification]]:
        """The sockets of the first run that flagged it (the others name the same ones)."""
        first = min(self.per_run, default=0)
        return [(sock, c) for index, sock, c in self.sockets if index == first]

    def causes(self) -> set[str]:
        return {c.cause for _, _, c in self.sockets}


def _median(values: Iterable[float]) -> float:
    listed = list(values)
    return statistics.median(listed) if listed else 0.0


@dataclass(frozen=True)
class SuiteSummary:
    """One row of the table, and the flagged tests behind it."""

    suite: str
    title: str
    runs: int
    tests: int
    #: Skipped, xfailed or xpassed (median of all runs): neither passed nor failed.
    skipped: float
    without_passed: float
    without_failed: float
    without_s: float
    with_passed: float
    with_failed: float
    with_leak_failures: float
    with_s: float
    flagged: tuple[FlaggedTest, ...]
    flagged_per_run: tuple[int, ...]
    #: with / without of each pair of neighbouring runs (same index): how noisy the ratio is.
    pair_ratios: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        return self.with_s / self.without_s if self.without_s else 0.0

    @property
    def overhead_ms_per_test(self) -> float:
        return 1000 * (self.with_s - self.without_s) / self.tests if self.tests else 0.0

    @property
    def real(self) -> tuple[FlaggedTest, ...]:
        return tuple(t for t in self.flagged if t.real)

    @property
    def false(self) -> tuple[FlaggedTest, ...]:
        return tuple(t for t in self.flagged if not t.real)

    def false_causes(self) -> Counter[str]:
        """False alarms by cause: a test counts once per cause among its sockets."""
        causes: Counter[str] = Counter()
        for test in self.false:
            causes.update(test.causes())
        return causes


def summarize(suite: str, title: str, runs: Sequence[Run]) -> SuiteSummary:
    """Medians over the runs of each mode; the flagged tests of every with-run, classified."""
    without = [r for r in runs if r.mode == WITHOUT]
    with_ = [r for r in runs if r.mode == WITH]
    flagged: dict[str, FlaggedTest] = {}
    for run in with_:
        for sock in run.sockets():
            test = flagged.setdefault(sock.nodeid, FlaggedTest(sock.nodeid))
            classification = classify(sock)
            test.sockets.append((run.index, sock, classification))
            test.per_run[run.index] = test.per_run.get(run.index, False) or classification.real
    return SuiteSummary(
        suite=suite, title=title, runs=len(with_),
        tests=int(_median(r.tests for r in runs)),
        skipped=_median(r.count("skipped", "xfailed", "xpassed") for r in runs),
        without_passed=_median(r.count("passed") for r in without),
        without_failed=_median(r.count(*FAILED_OUTCOMES) for r in without),
        without_s=_median(r.wall_s for r in without),
        with_passed=_median(r.count("passed") for r in with_),
        with_failed=_median(r.count(*FAILED_OUTCOMES) for r in with_),
        with_leak_failures=_median(len(r.flagged_ids) for r in with_),
        with_s=_median(r.wall_s for r in with_),
        flagged=tuple(sorted(flagged.values(), key=lambda t: t.nodeid)),
        flagged_per_run=tuple(len(r.flagged_ids) for r in with_),
        pair_ratios=tuple(w.wall_s / o.wall_s for w in with_ for o in without
                          if o.index == w.index and o.wall_s),
    )


# -- rendering -------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _where(sock: FlaggedSocket) -> str:
    return " / ".join(sock.where[:3]) if sock.where else "(not reported by the plugin)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(summaries: Sequence[SuiteSummary], *, heading: str = "",
                    every: bool = False) -> str:
    """The result table, the real leaks with their evidence, the false alarms by cause;
    with ``every``, a last table with each flagged test and its classification."""
    lines = [heading] if heading else []
    lines += [
        "| suite (tests run) | without the check | with `--tcplab-leaks` | wall time with / "
        "without | flagged tests: real / false |",
        "|---|---|---|---|---|",
    ]
    for s in summaries:
        without = (f"{_n(s.without_passed)} passed, {_n(s.without_failed)} failed, "
                   f"{s.without_s:.1f} s")
        with_ = (f"{_n(s.with_passed)} passed, {_n(s.with_failed)} failed "
                 f"({_n(s.with_leak_failures)} by the leak check), {s.with_s:.1f} s")
        pairs = ", ".join(f"{r:.2f}" for r in s.pair_ratios)
        lines.append(
            f"| {s.title} ({s.tests:,}; {_n(s.skipped)} skipped or xfail) | {without} | "
            f"{with_} | {s.ratio:.2f}× ({s.overhead_ms_per_test:+.1f} ms/test; pairs: {pairs}) "
            f"| {len(s.real)} / {len(s.false)} |")
    runs = sorted({s.runs for s in summaries})
    lines += ["", f"Medians of {'/'.join(str(r) for r in runs)} alternating runs per mode "
              "(without, with, without, ...); the ratio is that of the medians, pairs are "
              "each with-run over the run just before it; failed counts errors; flagged per "
              "with-run: "
              + "; ".join(f"{s.suite} {', '.join(str(n) for n in s.flagged_per_run)}"
                          for s in summaries) + "."]
    real = [(s, t) for s in summaries for t in s.real]
    lines += ["", "Real leaks (flagged sockets no code of the suite closed; the other sockets "
              "of the same flags are in field.json):", ""]
    if real:
        lines += ["| suite | test | runs flagged | fd, four-tuple, state | where opened | "
                  "evidence |", "|---|---|---|---|---|---|"]
        for s, test in real:
            for sock, c in [(sk, cl) for sk, cl in test.first_run() if cl.real]:
                lines.append(
                    f"| {s.suite} | `{_cell(test.nodeid)}` | {test.runs}/{s.runs} | "
                    f"fd {sock.fd} {_cell(sock.four_tuple)} {sock.state} | "
                    f"{_cell(_where(sock))} | {_cell(c.evidence)} |")
    else:
        lines.append("none.")
    lines += ["", "False alarms by cause (a test counts once per cause):", ""]
    causes = [(s, cause, n) for s in summaries for cause, n in s.false_causes().most_common()]
    if causes:
        lines += ["| suite | cause (measured) | tests | e.g. |", "|---|---|---|---|"]
        for s, cause, n in causes:
            example = next(t for t in s.false if cause in t.causes())
            sock, c = next((sk, cl) for _, sk, cl in example.sockets if cl.cause == cause)
            lines.append(f"| {s.suite} | {_cell(cause)} | {n} | `{_cell(example.nodeid)}`: "
                         f"{sock.state}, {_cell(c.evidence)} |")
    else:
        lines.append("none.")
    mixed = [(s, t) for s in summaries for t in s.flagged if not t.consistent]
    if mixed:
        lines += ["", "Classified differently between runs (counted as real above): "
                  + ", ".join(f"{s.suite} `{t.nodeid}`" for s, t in mixed) + "."]
    if every and any(s.flagged for s in summaries):
        lines += ["", "Every flagged test:", "",
                  "| suite | test | runs flagged | real leak | causes (each socket, every run) |",
                  "|---|---|---|---|---|"]
        for s in summaries:
            for test in s.flagged:
                lines.append(f"| {s.suite} | `{_cell(test.nodeid)}` | {test.runs}/{s.runs} | "
                             f"{'yes' if test.real else 'no'} | "
                             f"{_cell('; '.join(sorted(test.causes())))} |")
    return "\n".join(lines) + "\n"


def to_json(summaries: Sequence[SuiteSummary]) -> list[dict[str, Any]]:
    """Everything in the table, and every flagged socket with its classification."""
    out = []
    for s in summaries:
        out.append({
            "suite": s.suite, "title": s.title, "runs": s.runs, "tests": s.tests,
            "skipped": s.skipped,
            "without": {"passed": s.without_passed, "failed": s.without_failed,
                        "wall_s": round(s.without_s, 3)},
            "with": {"passed": s.with_passed, "failed": s.with_failed,
                     "leak_failures": s.with_leak_failures, "wall_s": round(s.with_s, 3)},
            "ratio": round(s.ratio, 3),
            "pair_ratios": [round(r, 3) for r in s.pair_ratios],
            "overhead_ms_per_test": round(s.overhead_ms_per_test, 2),
            "flagged_per_run": list(s.flagged_per_run),
            "real": len(s.real), "false": len(s.false),
            "false_causes": dict(s.false_causes()),
            "flagged": [{
                "nodeid": t.nodeid, "runs": t.runs, "real": t.real,
                "consistent": t.consistent,
                "sockets": [{"run": index, "fd": sk.fd, "four_tuple": sk.four_tuple,
                             "state": sk.state, "detail": sk.detail, "where": list(sk.where),
                             "real": c.real, "cause": c.cause, "evidence": c.evidence}
                            for index, sk, c in t.sockets],
            } for t in s.flagged],
        })
    return out

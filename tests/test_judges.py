"""The judges, without root: every claim has one, every outcome it declares is reachable
from a plausible measurement, and missing data gives a verdict, never an exception.

Each judge module ``tcplab.judges.X`` has its cases in ``tests/judge_cases_X.py``.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest

from judge_case import Case
from tcplab.claims import CLAIMS
from tcplab.judges import MODULES, Judge, all_judges
from tcplab.verdict import Verdict, jsonable

CASES: list[Case] = [
    case for name in MODULES for case in importlib.import_module(f"judge_cases_{name}").CASES
]
JUDGES = all_judges()
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_every_reproducible_claim_has_a_judge() -> None:
    wanted = {c.id for c in CLAIMS if c.unreproducible is None}
    assert sorted(wanted - JUDGES.keys()) == []
    assert sorted(JUDGES.keys() - wanted) == []  # no judge for an unreproducible claim


@pytest.mark.parametrize("claim", sorted(JUDGES))
def test_every_declared_outcome_is_reached_by_a_case(claim: str) -> None:
    judge = JUDGES[claim]
    assert {Verdict.CONFIRMED, Verdict.REFUTED} <= set(judge.outcomes), (
        f"{claim}: the rule must allow confirmed and refuted")
    reached = {case.expect for case in CASES if case.claim == claim}
    assert reached == set(judge.outcomes), f"{claim}: declared {judge.outcomes}, cases reach {reached}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.claim}-{c.expect.value}-{c.why[:40]}")
def test_case(case: Case) -> None:
    judgement = JUDGES[case.claim](case.measurement)
    assert judgement.verdict is case.expect, judgement.summary
    for text in case.says:
        assert text in judgement.summary, f"{text!r} not in: {judgement.summary}"
    jsonable(case.measurement)  # the measurement is the evidence: it must serialise


def _blank(kind: Any) -> Any:
    """The emptiest value of a type: None where allowed, else 0, "", False, (), {}."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return None if type(None) in args else _blank(args[0])
    if origin in (tuple, list, set, frozenset, dict) or kind in (tuple, list, set, frozenset, dict):
        return (origin or kind)()
    if origin is typing.Literal:
        return args[0]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: _blank(hints[f.name]) for f in dataclasses.fields(kind)
                       if f.init})
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return next(iter(kind))
    return kind()


@pytest.mark.parametrize("claim", sorted(JUDGES))
def test_missing_data_gives_a_verdict_not_an_exception(claim: str) -> None:
    judge: Judge[Any] = JUDGES[claim]
    judgement = judge(_blank(judge.measurement))
    assert judgement.verdict in judge.outcomes and judgement.summary


def test_scenarios_contain_no_verdict_expression() -> None:
    offenders = [p.name for p in SCENARIOS.glob("*.py")
                 if re.search(r"\bVerdict\b|\.record\(", p.read_text())]
    assert offenders == []

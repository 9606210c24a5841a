"""The judges: one pure function per claim, from a typed measurement to a verdict.

A scenario measures; a judge decides. Each judge takes the measurement record its claim's
scenarios fill in (a frozen dataclass defined next to the judge) and returns a
:class:`Judgement`: a verdict under the one rule written in :mod:`tcplab.verdict`, and a
summary that says only what the measurement shows. Judges do no I/O, need no root and are
tested in ``tests/test_judges.py`` for every outcome they declare.

Judges live in the modules named in ``MODULES``, each judge next to the claim it judges::

    @dataclass(frozen=True)
    class HalfClose:
        delivered: int | None       # bytes the half-closed peer sent that arrived
        sent: int

    @judge("C09", Verdict.CONFIRMED, Verdict.REFUTED)
    def c09(m: HalfClose) -> Judgement:
        ...

The outcomes a judge declares are a contract: returning another raises, and the tests
fail unless a plausible measurement produces each one. Missing data (a timer the kernel
did not report, a state never seen) is a measurement like any other: the judge says what
it means, it never raises.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tcplab.verdict import Verdict

M = TypeVar("M")

#: The modules holding judges, loaded on first use.
MODULES = ("closing", "segments", "timewait", "closewait", "timers", "tuning", "retries", "queues",
           "clients", "servers")


@dataclass(frozen=True)
class Judgement:
    """A judge's decision: the verdict, and what the measurement showed that decided it."""

    verdict: Verdict
    summary: str


@dataclass(frozen=True)
class Judge(Generic[M]):
    """The verdict rule of one claim, over one type of measurement."""

    claim: str
    measurement: type[M]
    outcomes: tuple[Verdict, ...]
    rule: Callable[[M], Judgement]

    def __call__(self, measurement: M) -> Judgement:
        if not isinstance(measurement, self.measurement):
            raise TypeError(f"{self.claim} is judged on a {self.measurement.__name__}, "
                            f"not a {type(measurement).__name__}")
        judgement = self.rule(measurement)
        if judgement.verdict not in self.outcomes:
            raise ValueError(f"{self.claim}'s judge returned {judgement.verdict.value}, "
                             f"not among its declared outcomes")
        return judgement


_REGISTRY: dict[str, Judge[Any]] = {}


def judge(claim: str, *outcomes: Verdict) -> Callable[[Callable[[M], Judgement]], Judge[M]]:
    """Register the decorated function as ``claim``'s judge, allowing ``outcomes``.

    The measurement type is the annotation of the function's one parameter.
    """

    def register(rule: Callable[[M], Judgement]) -> Judge[M]:
        hints = typing.get_type_hints(rule)
        hints.pop("return", None)
        (measurement,) = hints.values()
        if claim in _REGISTRY:
            raise ValueError(f"{claim} has two judges")
        made = Judge(claim, measurement, tuple(outcomes), rule)
        _REGISTRY[claim] = made
        return made

    return register


def _load() -> None:
    for name in MODULES:
        importlib.import_module(f"tcplab.judges.{name}")


def judge_for(claim: str) -> Judge[Any]:
    """The judge of ``claim``; KeyError if it has none."""
    _load()
    return _REGISTRY[claim]


def all_judges() -> dict[str, Judge[Any]]:
    """Every registered judge, by claim id."""
    _load()
    return dict(sorted(_REGISTRY.items()))


# Small helpers for summaries, shared by the judge modules.

def path_text(states: Iterable[str | None]) -> str:
    """``ESTABLISHED -> FIN_WAIT2 -> gone`` (None is an end the kernel no longer reports)."""
    return " -> ".join(s or "gone" for s in states) or "nothing seen"


def within(value: float | None, target: float, tolerance: float) -> bool:
    """True if ``value`` was measured and lies within ``tolerance`` of ``target``."""
    return value is not None and abs(value - target) <= tolerance

"""How a document fares against the kernel, per claim, with the evidence that decided it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.Enum):
    CONFIRMED = "confirmed"  # the kernel does what the document says
    REFUTED = "refuted"  # it does not, and never did on Linux as far as we can tell
    OUTDATED = "outdated"  # true once (an older kernel, a removed sysctl), not on this kernel
    PARTLY = "partly"  # true only with a condition the document leaves out

    @staticmethod
    def of(holds: bool, *, otherwise: Verdict | None = None) -> Verdict:
        """CONFIRMED when the measured condition holds, else ``otherwise`` (REFUTED by default)."""
        return Verdict.CONFIRMED if holds else (otherwise or Verdict.REFUTED)


#: How verdicts are listed (reports, the ledger) when runs disagree: from the kernel
#: agreeing most with a document to least.
DISPLAY_ORDER: tuple[str, ...] = tuple(
    v.value for v in (Verdict.CONFIRMED, Verdict.PARTLY, Verdict.OUTDATED, Verdict.REFUTED)
)


@dataclass(frozen=True)
class ClaimVerdict:
    claim: str
    verdict: Verdict
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.claim, "verdict": self.verdict.value, "summary": self.summary,
                "evidence": self.evidence}


class Verdicts:
    """Collects a scenario run's verdicts; a claim may be judged once per run."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self._allowed = allowed
        self.items: dict[str, ClaimVerdict] = {}
        self.evidence: dict[str, Any] = {}

    def record(self, claim: str, verdict: Verdict, summary: str, **evidence: Any) -> None:
        """Record ``verdict`` on ``claim``; ``evidence`` is what the kernel reported (JSON-able)."""
        if claim not in self._allowed:
            raise ValueError(f"{claim} is not among this scenario's claims {self._allowed}")
        if claim in self.items:
            raise ValueError(f"{claim} already has a verdict in this run")
        self.items[claim] = ClaimVerdict(claim, verdict, summary, evidence)

    def note(self, key: str, value: Any) -> None:
        """Evidence for the whole run that no single claim owns (figures, counters)."""
        self.evidence[key] = value

    def missing(self) -> list[str]:
        return [c for c in self._allowed if c not in self.items]

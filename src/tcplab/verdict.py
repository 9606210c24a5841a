"""How an article fares against the kernel, claim by claim: the one verdict rule.

Every claim is judged by the same rule, whatever its subject:

* **confirmed**: on this kernel the claim holds as the article states it; every figure it
  quotes matches the measurement within a tolerance the judge states.
* **partly**: the mechanism holds, but only under a condition the article leaves out and
  that matters in practice, or a figure it quotes is wrong.
* **refuted**: the mechanism does not hold.
* **outdated**: it held on older kernels (the judge names the version and the change), not
  on this one.

Implementation details that no observer or peer can see (a state the kernel passes through
inside the processing of one segment, say) are notes in the summary, never conditions.

How the rule reads in the cases that recur:

* A quoted default or figure that was right on older kernels and changed, while the
  mechanism still holds, is a wrong figure: **partly**, and the summary names the version
  and the change. **outdated** is for a mechanism that itself is gone or no longer works
  (a removed tunable).
* A condition is "left out" only if the claim's own articles do not state it: where they
  do (keepalive settings apply "when keepalive is enabled"), it is a note.
* The same omitted condition weighs the same way on every claim it touches (loopback-only
  tcp_tw_reuse=2; only sockets with SO_KEEPALIVE are probed; an orphaned FIN_WAIT2 ends
  after tcp_fin_timeout).

Verdicts are not written in scenarios. A scenario records a *measurement* (a typed record of
what the kernel did); the claim's judge in ``tcplab.judges`` turns it into a verdict and a
summary that says only what the measurement shows. The measurement itself is the evidence
kept in the results file.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcplab.judges import Judgement


class Verdict(enum.Enum):
    CONFIRMED = "confirmed"  # holds as stated; quoted figures match within the tolerance
    PARTLY = "partly"  # holds only under an unstated condition that matters, or a figure is wrong
    REFUTED = "refuted"  # the mechanism does not hold
    OUTDATED = "outdated"  # held on older kernels (version and change named), not on this one


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


def jsonable(value: Any) -> Any:
    """A measurement (dataclasses, enums, tuples, nested) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    return value


class Verdicts:
    """Collects a scenario run's verdicts; a claim may be judged once per run."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self._allowed = allowed
        self.items: dict[str, ClaimVerdict] = {}
        self.evidence: dict[str, Any] = {}

    def judge(self, claim: str, measurement: Any) -> Judgement:
        """Hand ``measurement`` to ``claim``'s judge and record what it decides.

        The measurement (JSON-able through :func:`jsonable`) is kept as the verdict's
        evidence, so the results file shows exactly what the judge saw.
        """
        from tcplab.judges import judge_for

        if claim not in self._allowed:
            raise ValueError(f"{claim} is not among this scenario's claims {self._allowed}")
        if claim in self.items:
            raise ValueError(f"{claim} already has a verdict in this run")
        judgement = judge_for(claim)(measurement)
        self.items[claim] = ClaimVerdict(claim, judgement.verdict, judgement.summary,
                                         jsonable(measurement))
        return judgement

    def note(self, key: str, value: Any) -> None:
        """Evidence for the whole run that no single claim owns (figures, counters)."""
        self.evidence[key] = jsonable(value)

    def missing(self) -> list[str]:
        return [c for c in self._allowed if c not in self.items]

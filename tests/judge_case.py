"""One example measurement for a judge, and the verdict it must produce (tests/test_judges.py)."""

from __future__ import annotations

from dataclasses import dataclass

from tcplab.verdict import Verdict


@dataclass(frozen=True)
class Case:
    """``measurement`` describes a plausible run (``why``); ``claim``'s judge must give
    ``expect``, and its summary must contain each of ``says`` (the figures that decided)."""

    claim: str
    why: str
    measurement: object
    expect: Verdict
    says: tuple[str, ...] = ()

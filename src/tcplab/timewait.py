"""TIME_WAIT's length: the figures the articles give, and how a measured length fares.

Shared by the scenario that reads the timer on entry and the slow one that waits for it to
run out, so both judge claim C11 by the same rule.
"""

from __future__ import annotations

from tcplab.verdict import Verdict

#: Linux's TCP_TIMEWAIT_LEN (include/net/tcp.h): a constant, not 2 x any MSL.
KERNEL_CONSTANT_S = 60.0

#: What each article says TIME_WAIT lasts, as a range of seconds (claim C11).
ARTICLE_FIGURES: dict[str, tuple[float, float]] = {
    "seed 000 (2 x MSL, 240 s)": (240.0, 240.0),
    "seed 001 (60 s on RHEL)": (60.0, 60.0),
    "seed 002 (1 to 4 minutes)": (60.0, 240.0),
}

#: How far a measurement may sit from a figure and still match it: the timer is read a few
#: milliseconds late, and it fires up to one timer-wheel slot late (4 s at this range).
TOLERANCE_S = 5.0


def judge_length(measured: float, *, how: str) -> tuple[Verdict, str, dict[str, bool]]:
    """C11's verdict for a measured TIME_WAIT length: CONFIRMED if every article's figure
    matches, REFUTED if none does, PARTLY otherwise; with a summary and the per-seed matches."""
    matches = {
        seed: low - TOLERANCE_S <= measured <= high + TOLERANCE_S
        for seed, (low, high) in ARTICLE_FIGURES.items()
    }
    if all(matches.values()):
        verdict = Verdict.CONFIRMED
    elif not any(matches.values()):
        verdict = Verdict.REFUTED
    else:
        verdict = Verdict.PARTLY
    agree = [s for s, ok in matches.items() if ok]
    disagree = [s for s, ok in matches.items() if not ok]
    origin = (
        "the fixed TCP_TIMEWAIT_LEN of the kernel; no MSL setting stands behind it"
        if abs(measured - KERNEL_CONSTANT_S) <= TOLERANCE_S
        else f"not the {KERNEL_CONSTANT_S:.0f} s constant of mainline Linux"
    )
    summary = (
        f"TIME_WAIT lasts {measured:.1f} s here ({how}): {origin}; matches "
        f"{', '.join(agree) or 'no article'}"
        + (f"; not {', '.join(disagree)}" if disagree else "")
    )
    return verdict, summary, matches

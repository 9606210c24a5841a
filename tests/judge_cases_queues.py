"""Cases for the judges in tcplab.judges.queues."""

from __future__ import annotations

from judge_case import Case

CASES: list[Case] = []

"""tcplab: reproduce TCP socket lifecycles on a real Linux kernel and judge what articles say.

The names most scenarios need are exported here; see the README for a tour. They are
imported on first use (PEP 562), so ``import tcplab`` itself is instant: the command line
can then catch a Ctrl-C that arrives while the rest is still loading.
"""

from __future__ import annotations

import importlib

# Not ``from typing import TYPE_CHECKING``: typing takes milliseconds to import (mypy treats
# any name TYPE_CHECKING as true).
TYPE_CHECKING = False

__version__ = "0.1.0"

_EXPORTS = {
    "Address": "tcplab.kernel.model",
    "FourTuple": "tcplab.kernel.model",
    "SocketRecord": "tcplab.kernel.model",
    "Timer": "tcplab.kernel.model",
    "TimerKind": "tcplab.kernel.model",
    "Connection": "tcplab.lab",
    "End": "tcplab.lab",
    "Lab": "tcplab.lab",
    "Listener": "tcplab.lab",
    "Scenario": "tcplab.scenario",
    "ScenarioResult": "tcplab.scenario",
    "TcpState": "tcplab.states",
    "ClaimVerdict": "tcplab.verdict",
    "Verdict": "tcplab.verdict",
    "Verdicts": "tcplab.verdict",
}
__all__ = [
    "Address", "ClaimVerdict", "Connection", "End", "FourTuple", "Lab", "Listener", "Scenario",
    "ScenarioResult", "SocketRecord", "TcpState", "Timer", "TimerKind", "Verdict", "Verdicts",
]

if TYPE_CHECKING:
    from typing import Any

    from tcplab.kernel.model import Address, FourTuple, SocketRecord, Timer, TimerKind
    from tcplab.lab import Connection, End, Lab, Listener
    from tcplab.scenario import Scenario, ScenarioResult
    from tcplab.states import TcpState
    from tcplab.verdict import ClaimVerdict, Verdict, Verdicts


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tcplab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

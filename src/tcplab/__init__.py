"""tcplab: reproduce TCP socket lifecycles on a real Linux kernel and judge what articles say.

The names most scenarios need are exported here; see the README for a tour.
"""

from tcplab.kernel.model import Address, FourTuple, SocketRecord, Timer, TimerKind
from tcplab.lab import Connection, End, Lab, Listener
from tcplab.scenario import Scenario, ScenarioResult
from tcplab.states import TcpState
from tcplab.verdict import ClaimVerdict, Verdict, Verdicts

__all__ = [
    "Address", "ClaimVerdict", "Connection", "End", "FourTuple", "Lab", "Listener", "Scenario",
    "ScenarioResult", "SocketRecord", "TcpState", "Timer", "TimerKind", "Verdict", "Verdicts",
]
__version__ = "0.1.0"

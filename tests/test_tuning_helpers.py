"""The tuning scenarios' helper modules (scenarios/_*.py). The socket filters and the
packet parsing they used are tested with the packet layer (tests/test_packets.py)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
if str(SCENARIOS) not in sys.path:
    sys.path.append(str(SCENARIOS))


def helper(name: str) -> ModuleType:
    return importlib.import_module(name)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="unshare --net needs root")
async def test_fresh_netns_defaults() -> None:
    defaults = helper("_defaults")
    values = await defaults.fresh_netns_ints("net.ipv4.tcp_keepalive_probes",
                                             "net.ipv4.tcp_syncookies")
    assert values["net.ipv4.tcp_keepalive_probes"] > 0
    assert values["net.ipv4.tcp_syncookies"] in (0, 1, 2)

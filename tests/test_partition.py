"""The vanished peer of the retry scenarios (``tcplab.kernel.partition``): it partitions
for real, refuses the host's namespace, and nothing of it outlives its process, even when
that process is SIGKILLed (the far namespace is held by an fd only, the veth dies with it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcplab.errors import Unavailable
from tcplab.kernel.partition import Partition
from test_namespaces import holders

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

CHILD = """
import json, os, socket, sys, time
from tcplab.kernel import netns
from tcplab.kernel.partition import Partition
near = netns.enter_private_netns({})
part = Partition().open()
listener = part.socket(far=True)
listener.bind((part.far_ip, 0)); listener.listen()
before = socket.create_connection(listener.getsockname(), timeout=2)  # reachable
part.vanish("far")
after = socket.socket(); after.settimeout(1.5)
try:
    after.connect(listener.getsockname()); reached = True
except OSError:
    reached = False
print(json.dumps({"near": near, "far": part.far_namespace(), "reached": reached}), flush=True)
time.sleep(600)
"""


def test_refuses_the_hosts_namespace() -> None:
    with pytest.raises(Unavailable, match="private network namespace"):
        Partition().open()


def test_partitions_and_leaves_nothing_when_killed() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        report = json.loads(line)
        assert report["reached"] is False  # after the cut, a SYN gets no answer
        assert holders(report["far"]) and holders(report["near"])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 5
    while (holders(report["far"]) or holders(report["near"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holders(report["far"]) == [] and holders(report["near"]) == []

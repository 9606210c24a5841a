"""Evidence sources behind one interface (issue 10, "Build: one pipeline"): the registry, a
new source as one class plus one registry line, each event filed once, and no import cycle
between the lab and the recording."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest

from tcplab import Lab, TcpState, sources
from tcplab.expect import reaches
from tcplab.kernel import packets, trace
from tcplab.kernel.source import Source
from tcplab.kernel.trace import TraceEvent
from tcplab.recording import Recording

SRC = Path(__file__).resolve().parents[1] / "src" / "tcplab"
S = TcpState
root_only = pytest.mark.skipif(trace.available() is not None or packets.available() is not None,
                               reason="needs tracefs and CAP_NET_RAW")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_the_lab_does_not_import_the_recording() -> None:
    assert "tcplab.recording" not in _imports(SRC / "lab.py")
    assert "tcplab.recording" not in _imports(SRC / "expect.py")
    assert "tcplab.lab" not in _imports(SRC / "sources.py")


def test_every_registered_source_fits_the_protocol() -> None:
    assert list(sources.REGISTRY) == ["snapshots", "trace", "capture"]
    for name in sources.REGISTRY:
        made = sources.make(name)
        assert isinstance(made, Source) and made.name == name


class FakeSource:
    """What a new source (eBPF, say) looks like: hands over TraceEvents of watched ports."""

    name = "fake"

    def __init__(self) -> None:
        self.ports: set[int] = set()
        self.queue: list[TraceEvent] = []
        self._r = -1

    def open(self) -> FakeSource:
        import os
        self._r, self._w = os.pipe()
        return self

    def fileno(self) -> int:
        return self._r

    def watch_port(self, port: int) -> None:
        self.ports.add(port)

    def read(self) -> Sequence[object]:
        out, self.queue = self.queue, []
        return out

    def close(self) -> None:
        import os
        if self._r >= 0:
            os.close(self._r)
            os.close(self._w)
            self._r = -1


async def test_a_new_source_is_one_class_and_one_registry_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeSource()
    monkeypatch.setitem(sources.REGISTRY, "fake", lambda: fake)
    async with Lab() as lab:
        with Recording(lab, sources=["fake"]) as recording:
            assert recording.mode == "snapshots + fake" and recording.has("fake")
            conn = await lab.connect()
            ports = (conn.client.four_tuple.local.port, conn.client.four_tuple.remote.port)
            assert set(ports) <= fake.ports | {ports[0]}  # the listener's port was announced
            fake.queue.append(TraceEvent(1e9, "state", *ports, S.ESTABLISHED, S.FIN_WAIT1))
            for _ in range(3):
                recording.sync()
            path = conn.timeline.traced_path("client")
    assert path == [S.ESTABLISHED, S.FIN_WAIT1]
    assert sum(1 for e in conn.timeline.events if e.source == "trace") == 1


@root_only
async def test_each_event_is_filed_once_however_often_it_syncs() -> None:
    async with Lab() as lab:
        with Recording(lab) as recording:
            conn = await lab.connect()
            await conn.client.close()
            await reaches(conn.client, S.FIN_WAIT2)
            counts = []
            for _ in range(5):
                recording.sync()
                counts.append(len(conn.timeline.events))
    assert len(set(counts)) == 1 and counts[0] > 0
    texts = [(e.t, e.end, e.text) for e in conn.timeline.events]
    assert len(texts) == len(set(texts))

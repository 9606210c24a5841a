"""The registry of evidence sources, and the snapshot source.

``REGISTRY`` maps each source's name to how to make one; ``tcplab.recording.Recording`` opens
the sources a run asks for, in this order, and loops over them. Adding a source (an eBPF
program, say) is one module with a class that fits ``tcplab.kernel.source.Source`` and one
line here.

Snapshots are a source too, of another kind: they are asked, not waited on. Each ``End``
takes its own through the lab's observer (``End.observe``); the recording's snapshot source
answers the recording's own questions (is there a timewait socket on this four-tuple now?)
and has nothing to hand over on ``read``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tcplab.kernel.model import FourTuple, SocketRecord
from tcplab.kernel.observer import DiagObserver
from tcplab.kernel.packets import SegmentCapture
from tcplab.kernel.source import Source, SourceUnavailable
from tcplab.kernel.trace import TransitionRecorder

__all__ = ["REGISTRY", "SnapshotSource", "Source", "SourceUnavailable", "make"]


class SnapshotSource:
    """sock_diag through the lab's kind of observer (``DiagObserver``), asked by exact
    four-tuple (see the module docstring)."""

    name = "snapshots"

    def __init__(self) -> None:
        self._diag: DiagObserver | None = None

    def open(self) -> SnapshotSource:
        try:
            self._diag = DiagObserver()
        except OSError as exc:
            raise SourceUnavailable(f"sock_diag: {exc}") from None
        return self

    def fileno(self) -> int:
        return -1  # asked, never waited on

    def watch_port(self, port: int) -> None:
        """Nothing to widen: a lookup names its four-tuple."""

    def read(self) -> Sequence[object]:
        return ()

    def lookup(self, four_tuple: FourTuple, *, interface: int = 0) -> SocketRecord | None:
        """What the kernel holds on ``four_tuple`` now (a timewait socket too), or None;
        ``interface``: the device the end was bound to (``End.interface``), 0 if none."""
        if self._diag is None:
            return None
        return self._diag.lookup(four_tuple, interface=interface)

    def close(self) -> None:
        if self._diag is not None:
            self._diag.close()
            self._diag = None


#: Every source a run can have, by name, in the order a recording opens them.
REGISTRY: dict[str, Callable[[], Source]] = {
    "snapshots": SnapshotSource,
    "trace": TransitionRecorder,
    "capture": SegmentCapture,
}


def make(name: str) -> Source:
    """A new, unopened source of the kind ``name`` (a key of ``REGISTRY``)."""
    return REGISTRY[name]()

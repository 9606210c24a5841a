"""What every evidence source is: one small protocol, so the recording needs no special cases.

A source is something of the kernel that a run can listen to: sock_diag snapshots
(``tcplab.sources.SnapshotSource``), the tracefs transitions (``kernel.trace``), the
AF_PACKET segments (``kernel.packets``). The recording (``tcplab.recording``) opens the
sources named in the registry (``tcplab.sources.REGISTRY``), tells each about the ports the
lab opens, waits on their file descriptors and files what ``read`` returns. A new source
(an eBPF program, say) is one module with a class that fits ``Source`` plus one registry
line; if it hands back ``TraceEvent``s or ``Segment``s, the timelines take them as they are.

This module imports nothing of tcplab, so the kernel modules can use it without a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


class SourceUnavailable(RuntimeError):
    """This machine cannot give this evidence (no privilege, no kernel feature): the run
    goes on without it, and says so in its mode."""


@runtime_checkable
class Source(Protocol):
    """One stream of kernel evidence for one run (see the module docstring)."""

    #: Its name in the registry and in a run's mode ("trace", "capture", ...).
    name: str

    def open(self) -> object:
        """Start listening; raise ``SourceUnavailable`` (or ``OSError``) if this machine
        cannot."""

    def fileno(self) -> int:
        """A file descriptor that turns readable when there is evidence; -1 when the source
        is asked rather than waited on (snapshots)."""

    def watch_port(self, port: int) -> None:
        """Keep evidence of sockets on ``port`` from now on (widen a kernel filter)."""

    def read(self) -> Sequence[object]:
        """Everything new since the last read, oldest first; never blocks."""

    def close(self) -> None:
        """Release everything; safe to call twice."""

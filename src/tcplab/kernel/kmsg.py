"""The kernel log since a moment: ``/dev/kmsg`` read without blocking from where we opened it.

A scenario opens a ``KernelLog`` before the experiment (that seeks to the end of the ring
buffer) and calls ``since()`` after it: every record the kernel logged in between, from any
source — the log is one for the whole machine, not per namespace, so callers filter for the
message they look for. Reading ``/dev/kmsg`` needs root where ``kernel.dmesg_restrict`` is 1.
"""

from __future__ import annotations

import errno
import os
from types import TracebackType

KMSG = "/dev/kmsg"
RECORD_MAX = 8192  # one read() returns one record; the kernel's limit is below this


class KernelLog:
    """Kernel log records written after this object was made (see the module docstring)."""

    def __init__(self) -> None:
        self._fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self._fd, 0, os.SEEK_END)

    def since(self) -> list[str]:
        """The messages logged since opening (or the last call), without their headers."""
        messages: list[str] = []
        while True:
            try:
                raw = os.read(self._fd, RECORD_MAX)
            except BlockingIOError:
                return messages
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # records overwritten before we read them
                    messages.append("(kernel log records lost: the ring buffer wrapped)")
                    continue
                raise
            if not raw:
                return messages
            header, _, text = raw.decode(errors="replace").partition(";")
            messages.append(text.splitlines()[0] if text else header)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> KernelLog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

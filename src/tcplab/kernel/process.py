"""Child processes that cannot outlive their parent."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies.

    Used as ``preexec_fn`` for every child tcplab starts: a runner killed by CI's timeout, or
    a scenario killed by the runner, must not leave a process holding sockets behind.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

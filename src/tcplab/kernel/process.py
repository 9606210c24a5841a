"""Child processes that cannot outlive tcplab.

``PR_SET_PDEATHSIG`` makes the kernel SIGKILL a child when its *parent thread* exits — the
thread that forked it, not the process. trio starts processes from worker threads, which
retire after 10 s idle, so a child started by ``trio.run_process`` with a death signal would
be killed 10 s later for no reason. ``Child`` therefore forks from the calling thread (the
trio thread, which lives as long as the process) and waits for the exit through a pidfd,
without blocking trio.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Sequence
from typing import IO, Any

import trio

PR_SET_PDEATHSIG = 1
# Resolved once in the parent: the child must not dlopen between fork and exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """``preexec_fn``: ask the kernel to SIGKILL this child when its parent thread dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Child:
    """A child process started from this thread, SIGKILLed by the kernel if we die first.

    ``stdout`` is a trio stream when ``stdout=subprocess.PIPE`` was asked for; otherwise the
    output goes where ``stdout``/``stderr`` say (a file, DEVNULL).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> None:
        self._popen = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            preexec_fn=die_with_parent,
        )
        self.pid = self._popen.pid
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:  # never leave a child nobody can wait for
            self._popen.kill()
            self._popen.wait()
            raise
        self.stdout: trio.lowlevel.FdStream | None = None
        if self._popen.stdout is not None:
            self.stdout = trio.lowlevel.FdStream(os.dup(self._popen.stdout.fileno()))
            self._popen.stdout.close()

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def kill(self) -> None:
        """SIGKILL, unless it has already exited."""
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.kill()

    async def wait(self) -> int:
        """Wait for the exit (the pidfd turns readable) and reap it; return the exit status."""
        if self._popen.poll() is None:
            if self._pidfd >= 0:
                await trio.lowlevel.wait_readable(self._pidfd)
            else:  # released by an ``aclose`` cancelled while it waited: poll instead
                while self._popen.poll() is None:
                    await trio.sleep(0.01)
        return self._popen.wait()

    async def aclose(self) -> None:
        """Kill, reap and release everything; safe to call twice.

        The pidfd and the pipe are released even when the wait is cancelled (a caller's
        deadline): the child is SIGKILLed already, and the fds must not outlive this call.
        """
        self.kill()
        try:
            await self.wait()
        finally:
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
            if self.stdout is not None:
                with trio.CancelScope(shield=True):
                    await self.stdout.aclose()

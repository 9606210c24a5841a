"""Child processes that cannot outlive tcplab, and the one way tcplab runs its code in one.

``PR_SET_PDEATHSIG`` makes the kernel signal a child when its *parent thread* exits — the
thread that forked it, not the process. trio starts processes from worker threads, which
retire after 10 s idle, so a child started by ``trio.run_process`` with a death signal would
be signalled 10 s later for no reason. ``Child`` therefore forks from the calling thread (the
trio thread, which lives as long as the process) and waits for the exit through a pidfd,
without blocking trio.

``run_in_child`` is the protocol both ``tcplab run`` (a scenario per run, ``runner.run_one``)
and ``tcplab.isolated`` (a probe in a fresh namespace) use: ``python -P`` calls a named tcplab
function with JSON arguments, and the child writes its JSON reply on a pipe of its own, so
nothing is put on disk. The child's death signal is SIGTERM, not SIGKILL: whichever way its
parent ends (a runner SIGKILLed by CI included), the child's ``sigterm_cancels`` turns the
signal into a cancellation, so the child itself closes its sockets and removes its tracefs
instance; a backstop alarm ends it ``GRACE`` seconds later if that cleanup hangs.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import trio

PR_SET_PDEATHSIG = 1
# Resolved once in the parent: the child must not dlopen between fork and exec.
_prctl = ctypes.CDLL(None, use_errno=True).prctl

#: Seconds a child of ``run_in_child`` gets beyond its own time limit before it is stopped,
#: and that a child told to stop (SIGTERM) gets to clean up before it is SIGKILLed.
GRACE = 10.0
#: Exit status of a child that was interrupted (Ctrl-C, SIGTERM) and wrote no reply.
EXIT_INTERRUPTED = 130
#: The directory holding this copy of tcplab, put on the child's PYTHONPATH whatever the cwd.
_SRC = str(Path(__file__).resolve().parents[2])
#: Bytes of a child's stderr kept (its end: where a traceback is).
_STDERR_KEPT = 64 * 1024


def die_with_parent(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn``: the kernel sends ``signum`` to this child when its parent thread dies,
    and sends it at once if the parent died before the request was made."""
    parent = os.getpid()

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # orphaned between fork and prctl: nobody will tell us
            os.kill(os.getpid(), signum)

    return preexec


class Child:
    """A child process started from this thread, signalled by the kernel if we die first.

    ``stdout``/``stderr`` are trio streams when ``subprocess.PIPE`` was asked for; otherwise
    the output goes where they say (a file, DEVNULL). ``deathsig`` is what the child gets
    when we die: SIGKILL unless the child cleans up after itself (``run_in_child``).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        deathsig: int = signal.SIGKILL,
        pass_fds: Sequence[int] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._popen = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            preexec_fn=die_with_parent(deathsig), pass_fds=tuple(pass_fds),
            env=None if env is None else dict(env),
        )
        self.pid = self._popen.pid
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:  # never leave a child nobody can wait for
            self._popen.kill()
            self._popen.wait()
            raise
        self.stdout = self._stream(self._popen.stdout)
        self.stderr = self._stream(self._popen.stderr)

    @staticmethod
    def _stream(pipe: IO[bytes] | None) -> trio.lowlevel.FdStream | None:
        if pipe is None:
            return None
        stream = trio.lowlevel.FdStream(os.dup(pipe.fileno()))
        pipe.close()
        return stream

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def kill(self) -> None:
        """SIGKILL, unless it has already exited."""
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Send ``signum``, unless it has already exited."""
        if self._popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._popen.send_signal(signum)

    async def wait(self) -> int:
        """Wait for the exit (the pidfd turns readable) and reap it; return the exit status."""
        if self._popen.poll() is None:
            if self._pidfd >= 0:
                await trio.lowlevel.wait_readable(self._pidfd)
            else:  # released by an ``aclose`` cancelled while it waited: poll instead
                while self._popen.poll() is None:
                    await trio.sleep(0.01)
        return self._popen.wait()

    async def aclose(self, *, cleanup: float = 0.0) -> None:
        """Stop (SIGTERM, then SIGKILL after ``cleanup`` s; at once if 0), reap and release
        everything; safe to call twice.

        The pidfd and the pipes are released even when the wait is cancelled (a caller's
        deadline): the child is SIGKILLed already, and the fds must not outlive this call.
        """
        if cleanup > 0 and self._popen.poll() is None:
            self.signal(signal.SIGTERM)
            with trio.move_on_after(cleanup):
                await self.wait()
        self.kill()
        try:
            await self.wait()
        finally:
            if self._pidfd >= 0:
                os.close(self._pidfd)
                self._pidfd = -1
            with trio.CancelScope(shield=True):
                for stream in (self.stdout, self.stderr):
                    if stream is not None:
                        await stream.aclose()

    def close(self) -> None:
        """``aclose`` outside any event loop (a pytest fixture's teardown): SIGKILL, reap
        blocking (SIGKILL cannot be ignored) and release the pidfd and pipes."""
        self.kill()
        self._popen.wait()
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        for stream in (self.stdout, self.stderr):
            if stream is None:
                continue
            try:
                stream.close()
            except RuntimeError:  # no trio run, so nobody waits on it: trio's own close
                stream._fd_holder._raw_close()  # without the wake-up (as its __del__ does)


# -- running tcplab code in a child --------------------------------------------------------


@dataclass
class Finished:
    """How a ``run_in_child`` call ended.

    ``status`` is the exit status (negative: the signal that ended it), None if the child
    was stopped at its deadline. ``reply`` is what it wrote: ``{"ok": True, "value": ...}``,
    or ``{"ok": False, "kind", "error", "traceback"}`` for an exception; None if nothing.
    """

    status: int | None
    reply: dict[str, Any] | None
    stderr: str
    duration: float
    limit: float

    def stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(self.stderr.strip().splitlines()[-lines:])


async def run_in_child(function: str, arguments: Mapping[str, Any], *, seconds: float) -> Finished:
    """Call ``function`` (``"package.module:name"``, a tcplab function taking ``arguments`` as
    keywords and returning JSON-able data) in a child process, allowing it ``seconds`` plus
    ``GRACE``; see the module docstring.

    Cancelled (Ctrl-C) or past its deadline, the child gets SIGTERM and ``GRACE`` s to clean
    up, then SIGKILL: it never outlives this call.
    """
    read_end, write_end = os.pipe()
    argv = [sys.executable, "-P", "-c", "from tcplab.kernel.process import serve; serve()",
            str(write_end), function, json.dumps(dict(arguments))]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, env.get("PYTHONPATH")) if p)
    limit = seconds + GRACE
    started = time.monotonic()
    try:
        child = Child(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                      deathsig=signal.SIGTERM, pass_fds=(write_end,), env=env)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)  # the child's now: EOF when it exits
    reply = trio.lowlevel.FdStream(read_end)
    out: list[bytes] = []
    err = bytearray()
    status: int | None = None

    async def drain(stream: trio.lowlevel.FdStream | None, into: Callable[[bytes], None],
                    done: trio.Event) -> None:
        while stream is not None and (chunk := await stream.receive_some()):
            into(chunk)
        done.set()

    def keep_err(chunk: bytes) -> None:
        err.extend(chunk)
        del err[:-_STDERR_KEPT]

    try:
        async with trio.open_nursery() as nursery:
            ends = trio.Event(), trio.Event()
            nursery.start_soon(drain, reply, out.append, ends[0])
            nursery.start_soon(drain, child.stderr, keep_err, ends[1])
            with trio.move_on_after(limit):
                status = await child.wait()
            if status is not None:  # a grandchild may hold a pipe open: read on, briefly
                with trio.move_on_after(1.0):
                    for end in ends:
                        await end.wait()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):  # cancelled or timed out: never leave it running
            await child.aclose(cleanup=GRACE)
            await reply.aclose()
    data = b"".join(out)
    parsed: dict[str, Any] | None = None
    if data:
        with contextlib.suppress(ValueError):
            parsed = json.loads(data)
    return Finished(status, parsed, err.decode(errors="replace"), time.monotonic() - started, limit)


def serve() -> None:
    """The child's side of ``run_in_child``: ``argv`` is REPLY_FD FUNCTION JSON."""
    fd, function, raw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    module, _, name = function.partition(":")
    try:
        value = getattr(importlib.import_module(module), name)(**json.loads(raw))
        reply: dict[str, Any] = {"ok": True, "value": value}
    except KeyboardInterrupt:  # interrupted (Ctrl-C, or SIGTERM turned into a cancellation)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        reply = {"ok": False, "kind": type(exc).__name__, "error": str(exc),
                 "traceback": traceback.format_exc()}
    with os.fdopen(fd, "w") as f:
        json.dump(reply, f)
    raise SystemExit(0)


@contextlib.contextmanager
def sigterm_cancels(scope: trio.CancelScope) -> Iterator[None]:
    """Inside a trio run: SIGTERM cancels ``scope`` instead of ending the process.

    SIGTERM is what ``run_in_child`` sends a child it stops, and what the kernel sends when
    the child's parent dies (``deathsig``): cancelling lets the caller's ``finally`` blocks
    close sockets and remove tracefs instances. If that cleanup hangs, SIGALRM (default
    action: terminate) ends the process ``GRACE`` s later.
    """
    token = trio.lowlevel.current_trio_token()

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.alarm(math.ceil(GRACE))
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(scope.cancel)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

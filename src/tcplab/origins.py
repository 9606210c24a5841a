"""Where each socket of this process was created, recorded cheaply while a leak check runs.

CPython raises the audit event ``socket.__new__`` (the new object, family, type, proto;
``sock_initobj`` in Modules/socketmodule.c) every time a ``socket.socket`` object is made:
``socket()``, ``create_connection``, ``create_server``, ``fromfd``, ``socketpair``, and
``accept``, which wraps the accepted fd in a new object inside ``socket.accept`` (so its
caller's frame holds the listener). asyncio and trio build on stdlib socket objects, so
their connects, listeners and accepts raise it too (checked on Python 3.11: asyncio's
``open_connection``, ``start_server`` and its callback accept; trio's ``open_tcp_stream``,
``open_tcp_listeners`` and ``accept``). Sockets made in C by other code (uvloop's libuv)
raise nothing: they have no origin.

An audit hook can never be removed (PEP 578), so :func:`install` adds one hook once per
process; while no :class:`Tracker` is active it costs one global read per audit event.
An active tracker keeps, per TCP-capable socket made meanwhile, a compact stack (file,
line, function: no frame objects, so no locals are kept alive) and, for an accepted
socket, the inode and address of its listener. The event fires before the socket has its
fd, so a new socket is first kept by weak reference and resolved to its inode (``fstat``)
at the next socket event, at ``detach()`` (wrapped once, for code that detaches an fd and
never closes it) and before a check reads the records. Only sockets that can still leak
are kept: records of sockets this process no longer holds are dropped once there are many.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import sysconfig
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import pluggy

from tcplab.kernel.procfs import socket_fds

#: A frame of a creation stack: file, line, function.
Frame = tuple[str, int, str]

MAX_FRAMES = 48  # innermost frames kept per socket: the test's frame is rarely deeper
PRUNE_AT = 1024  # records kept before those of sockets no longer held are dropped

_TCP_FAMILIES = frozenset({-1, socket.AF_INET, socket.AF_INET6})
_TYPE_FLAGS = getattr(socket, "SOCK_NONBLOCK", 0) | getattr(socket, "SOCK_CLOEXEC", 0)
_SOCKET_INIT = socket.socket.__init__.__code__
_SOCKET_ACCEPT = socket.socket.accept.__code__
# Frames above pluggy's are pytest's own machinery: the walk stops there.
_STOP_DIRS = (str(Path(pluggy.__file__).resolve().parent) + os.sep,)


@dataclass(frozen=True)
class Origin:
    """Where a socket was made: its stack, and for an accepted one, its listener."""

    frames: tuple[Frame, ...]  # outermost first; the last one made the socket
    listener: int = 0  # inode of the listener an accepted socket came from (0: not accepted)
    listener_address: str = ""  # that listener's local address, "127.0.0.1:8080"
    thread: str = ""  # the thread that made it, when not the main thread
    #: Where the task that started the one making the socket waits, when the making
    #: task's own stack has no test code (a connect in a child task of a task group).
    awaited_in: tuple[Frame, ...] = ()


@dataclass
class Tracker:
    """The records of one check: socket inode -> ``Origin``, and the asyncio loops seen."""

    by_inode: dict[int, Origin] = field(default_factory=dict)
    _pending: list[tuple[weakref.ref[Any], Origin]] = field(default_factory=list)
    #: inode -> weak references to every socket object made on it (``dup``, ``fromfd``
    #: and ``accept`` make new objects; ``detach`` leaves its object without the fd).
    _objects: dict[int, list[weakref.ref[Any]]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _loops: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    _prune_at: int = PRUNE_AT

    def created(self, sock: object, family: int, kind: int) -> None:
        """The audit event: record where ``sock`` is being made (its fd comes later)."""
        if family not in _TCP_FAMILIES or (kind != -1 and kind & ~_TYPE_FLAGS != socket.SOCK_STREAM):
            return
        try:
            ref = weakref.ref(sock)
        except TypeError:  # a bare _socket.socket: no weak references, too rare to matter
            return
        frame: FrameType | None = sys._getframe(2)
        listener, address = 0, ""
        if frame is not None and frame.f_code is _SOCKET_INIT:
            caller = frame.f_back
            if caller is not None and caller.f_code is _SOCKET_ACCEPT:
                listener, address = _listener(caller.f_locals.get("self"))
        thread = threading.current_thread()
        stack = _stack(frame)
        asyncio = sys.modules.get("asyncio")
        loop = asyncio._get_running_loop() if asyncio is not None else None
        if loop is not None:
            with self._lock, contextlib.suppress(TypeError):  # a loop without weak references
                self._loops.add(loop)
        awaited: tuple[Frame, ...] = ()
        if not listener and not any(looks_like_test_file(f[0]) for f in stack):
            awaited = _awaiting_test(loop)
        origin = Origin(stack, listener, address,
                        "" if thread is threading.main_thread() else thread.name, awaited)
        with self._lock:
            self._resolve()
            self._pending.append((ref, origin))

    def resolve(self) -> None:
        """Give every socket made so far its inode (before reading ``by_inode``)."""
        with self._lock:
            self._resolve()

    def _resolve(self) -> None:
        for ref, origin in self._pending:
            sock = ref()
            fd = sock.fileno() if sock is not None else -1
            if fd >= 0:
                with contextlib.suppress(OSError):
                    inode = os.fstat(fd).st_ino
                    self.by_inode.setdefault(inode, origin)
                    self._objects.setdefault(inode, []).append(ref)
        self._pending.clear()
        if len(self.by_inode) > self._prune_at:
            held = socket_fds([os.getpid()])
            self.by_inode = {k: v for k, v in self.by_inode.items() if k in held}
            self._objects = {k: v for k, v in self._objects.items() if k in held}
            self._prune_at = max(PRUNE_AT, 2 * len(self.by_inode))

    def collectable(self, inodes: set[int]) -> set[int]:
        """Those of ``inodes`` a garbage collection might close: a socket object made on
        it is still alive (perhaps only a dead reference cycle holds it) and still owns
        it, or its socket was made where no audit event saw it (C code, an untracked
        thread start), so nothing is known. The others are owned by no Python socket: their
        objects were freed or gave the fd away (``detach()``), and a collection cannot close
        them (an fd passed on as a plain int, to an object that closes it when finalized,
        is the blind spot: such objects are not socket objects).
        """
        with self._lock:
            self._resolve()
            return {inode for inode in inodes
                    if inode not in self.by_inode
                    or any(_owns(ref(), inode) for ref in self._objects.get(inode, ()))}

    def loops(self) -> list[Any]:
        """The asyncio loops that were running where sockets were made (still alive)."""
        return list(self._loops)


def _owns(sock: Any, inode: int) -> bool:
    """Whether the live socket object ``sock`` still holds an fd on ``inode``."""
    if sock is None:
        return False
    try:
        fd = sock.fileno()
        return fd >= 0 and os.fstat(fd).st_ino == inode
    except (OSError, ValueError):
        return False


def _listener(sock: object) -> tuple[int, str]:
    """The inode and local address of the listener ``accept`` was called on."""
    if not isinstance(sock, socket.socket):
        return 0, ""
    try:
        inode = os.fstat(sock.fileno()).st_ino
        name = sock.getsockname()
    except (OSError, ValueError):
        return 0, ""
    host, port = name[0], name[1]
    return inode, (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def _awaiting_test(loop: Any) -> tuple[Frame, ...]:
    """The await chain of another task, waiting in test code, that probably started this
    one: under trio the parent tasks (through their nurseries), under asyncio the loop's
    other tasks. Empty if there is none."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            task = trio.lowlevel.current_task()
        except RuntimeError:  # not in trio
            task = None
        while task is not None and task.parent_nursery is not None:
            task = task.parent_nursery.parent_task
            chain = _await_chain(task.coro)
            if any(looks_like_test_file(f[0]) for f in chain):
                return chain
    asyncio = sys.modules.get("asyncio")
    if loop is not None and asyncio is not None:
        current = asyncio.current_task(loop)
        for other in asyncio.all_tasks(loop):
            if other is not current:
                chain = _await_chain(other.get_coro())
                if any(looks_like_test_file(f[0]) for f in chain):
                    return chain
    return ()


def _await_chain(coro: Any) -> tuple[Frame, ...]:
    """A suspended coroutine's frames, outermost first (as ``Task.iter_await_frames``)."""
    frames: list[Frame] = []
    while coro is not None and len(frames) < MAX_FRAMES:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        coro = getattr(coro, "cr_await", None) if hasattr(coro, "cr_frame") \
            else getattr(coro, "gi_yieldfrom", None)
    return tuple(frames)


def looks_like_test_file(filename: str) -> bool:
    """``test_*.py``, ``*_test.py`` or ``conftest.py``: pytest's default test files."""
    name = os.path.basename(filename)
    return name == "conftest.py" or name.endswith("_test.py") or (
        name.startswith("test_") and name.endswith(".py"))


def _stack(frame: FrameType | None) -> tuple[Frame, ...]:
    frames: list[Frame] = []
    while frame is not None and len(frames) < MAX_FRAMES:
        code = frame.f_code
        if code.co_filename.startswith(_STOP_DIRS):
            break
        if code is not _SOCKET_INIT:
            frames.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


_active: Tracker | None = None
_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    tracker = _active
    if tracker is not None and event == "socket.__new__":
        try:
            tracker.created(args[0], args[1], args[2])
        except Exception:  # an exception here would fail the socket's creation itself
            return


def install() -> None:
    """Add the audit hook (once per process) and wrap ``socket.detach`` to resolve first."""
    global _installed
    if _installed:
        return
    _installed = True
    sys.addaudithook(_audit)
    detach: Callable[[socket.socket], int] = socket.socket.detach

    def detach_resolved(self: socket.socket) -> int:
        tracker = _active
        if tracker is not None:
            tracker.resolve()
        return detach(self)

    detach_resolved.__doc__ = detach.__doc__
    socket.socket.detach = detach_resolved  # type: ignore[method-assign,assignment]


def start() -> Tracker:
    """Install if needed, and record from now on into a new tracker."""
    global _active
    install()
    _active = Tracker()
    return _active


def stop() -> None:
    """Record nothing from now on (the hook stays, as a no-op)."""
    global _active
    _active = None


def active() -> Tracker | None:
    return _active


# --- rendering ---------------------------------------------------------------------------

_LIBRARY_DIRS = tuple(sorted({  # longest first: a file is shown from its package's directory
    str(Path(p).resolve()) + os.sep
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
} | {str(Path(__file__).resolve().parent.parent) + os.sep}, key=len, reverse=True))


def is_library(filename: str) -> bool:
    """Whether a frame's file is the standard library, an installed package or tcplab."""
    return filename.startswith(_LIBRARY_DIRS) or filename.startswith("<frozen")


def test_side(origin: Origin, is_test: Callable[[str], bool]) -> Frame | None:
    """The innermost frame in a file ``is_test`` accepts (the test module, conftests), or
    else the innermost frame of code that is not a library; None if there is none."""
    for frame in reversed(origin.frames):
        if is_test(frame[0]):
            return frame
    for frame in reversed(origin.frames):
        if not is_library(frame[0]):
            return frame
    return None


def short_path(filename: str, root: Path | None = None) -> str:
    """A file name to print: relative to ``root``, or from the package directory."""
    if root is not None:
        try:
            return str(Path(filename).relative_to(root))
        except ValueError:
            pass
    for base in _LIBRARY_DIRS:
        if filename.startswith(base):
            return filename[len(base):]
    return filename


def where(frame: Frame, root: Path | None = None) -> str:
    """``tests/test_x.py:12 in test_x``."""
    return f"{short_path(frame[0], root)}:{frame[1]} in {frame[2]}"


def short_stack(origin: Origin, is_test: Callable[[str], bool], *, root: Path | None = None,
                limit: int = 6) -> list[str]:
    """From the outermost frame of the test's code (the test function, say) inwards to
    the call that made the socket, at most ``limit`` lines (the outer ones and the
    innermost two, "..." between)."""
    frames = list(origin.frames)
    first = next((i for i, f in enumerate(frames) if is_test(f[0])), None)
    if first is None:
        first = next((i for i, f in enumerate(frames) if not is_library(f[0])),
                     max(0, len(frames) - limit))
    lines = [where(frame, root) for frame in frames[first:]]
    if len(lines) > limit:
        lines = [*lines[:limit - 3], "...", *lines[-2:]]
    return lines

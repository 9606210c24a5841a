"""Running one probe in a child process that has a fresh network namespace of its own.

A scenario declares one set of sysctls, and its process lives in one namespace. To compare
settings (``tcp_tw_reuse`` 0 against 1), or to read a tunable's default in a namespace that
nobody has touched, a scenario runs a *probe* — an async function of its own module — in a
child process: ``python -m tcplab.isolated TARGET FUNCTION JSON``. The child unshares a new
namespace (``netns.enter_private_netns``), sets that probe's sysctls there, opens its own
``Lab``, awaits the function, and prints its JSON-able result on stdout.

Why a process and not a thread: a namespace belongs to a thread, and trio's worker threads
are shared; a process also takes its namespace, sockets and timers with it when it dies.
Clean-up holds however the run ends: the parent kills the child when its deadline passes or
it is cancelled (``trio.run_process``), and the child watches its parent through a pidfd and
stops as soon as the parent is gone (a runner that SIGKILLs a scenario leaves no orphan).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from tcplab.expect import ExpectationFailed
from tcplab.kernel import netns, sysctl
from tcplab.lab import Lab

Probe = Callable[..., Awaitable[Any]]

#: Seconds the parent waits beyond the probe's own time limit before killing the child.
GRACE = 5.0
#: The directory holding this copy of tcplab, put on the child's PYTHONPATH whatever the cwd.
_SRC = str(Path(__file__).resolve().parent.parent)


class ProbeCrashed(RuntimeError):
    """A probe raised something other than an expectation failure (its traceback included)."""


async def run_isolated(
    target: str | Path,
    function: str,
    *,
    sysctls: Mapping[str, str | int] | None = None,
    seconds: float = 10.0,
    **kwargs: Any,
) -> Any:
    """Run ``await function(lab, **kwargs)`` from ``target`` (a ``.py`` file or a module name)
    in a child process inside a fresh network namespace with ``sysctls`` set, allowing it
    ``seconds``; return its result.

    An ``ExpectationFailed`` in the child is raised here again (same message), so a probe's
    failed expectation fails the scenario as an expectation, not as a crash.
    """
    request = {"sysctls": dict(sysctls or {}), "seconds": seconds, "kwargs": kwargs,
               "parent": os.getpid()}
    argv = [sys.executable, "-m", "tcplab.isolated", str(target), function, json.dumps(request)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_SRC, env.get("PYTHONPATH")) if p)
    proc: subprocess.CompletedProcess[bytes] | None = None
    with trio.move_on_after(seconds + GRACE):
        proc = await trio.run_process(
            argv, check=False, capture_stdout=True, capture_stderr=True, stdin=subprocess.DEVNULL,
            env=env,
        )
    if proc is None:
        raise ProbeCrashed(f"probe {function} still running {seconds + GRACE:.0f} s after it began")
    lines = proc.stdout.decode(errors="replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.decode(errors="replace").strip().splitlines()[-5:])
        raise ProbeCrashed(f"probe {function} exited {proc.returncode} without a result: {tail}")
    answer = json.loads(lines[-1])
    if answer["ok"]:
        return answer["result"]
    if answer["kind"] == "ExpectationFailed":
        raise ExpectationFailed(f"in probe {function} {dict(sysctls or {})}: {answer['error']}")
    raise ProbeCrashed(f"probe {function} crashed: {answer['error']}\n{answer['traceback']}")


async def fresh_sysctls(names: list[str]) -> dict[str, str | None]:
    """The values of ``names`` in a brand-new network namespace: this kernel's defaults for a
    namespace, whatever the host's administrator has tuned (None: no such sysctl here)."""
    result: dict[str, str | None] = await run_isolated(__name__, "read_sysctls", names=names)
    return result


async def read_sysctls(lab: Lab, names: list[str]) -> dict[str, str | None]:
    """Probe: read ``names`` where it runs (see ``fresh_sysctls``)."""
    return {name: sysctl.read(name) for name in names}


# -- the child's side ------------------------------------------------------------------


def _load(target: str, function: str) -> Probe:
    if target.endswith(".py"):
        path = Path(target)
        spec = importlib.util.spec_from_file_location(f"tcplab_probe_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))  # so a scenario's sibling helpers import
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    probe: Probe = getattr(module, function)
    return probe


async def _watch_parent(parent: int, cancel: trio.CancelScope) -> None:
    """Cancel the probe as soon as the parent process exits (it can't clean up after us)."""
    try:
        pidfd = os.pidfd_open(parent)
    except ProcessLookupError:
        cancel.cancel()
        return
    try:
        if os.getppid() != parent:  # it died before we held it: we were adopted already
            cancel.cancel()
            return
        await trio.lowlevel.wait_readable(pidfd)
        cancel.cancel()
    finally:
        os.close(pidfd)


async def _child(probe: Probe, seconds: float, kwargs: dict[str, Any], parent: int) -> Any:
    result: Any = None
    failure: Exception | None = None
    finished = False
    probe_scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_parent, parent, probe_scope)
        with probe_scope:
            try:
                async with Lab() as lab:
                    with trio.fail_after(seconds):
                        result = await probe(lab, **kwargs)
            except Exception as exc:  # kept, and raised outside the nursery unwrapped
                failure = exc
            finished = True
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if not finished:  # the parent is gone: nobody is waiting for a result
        raise SystemExit(1)
    return result


def main(argv: list[str]) -> int:
    target, function, raw = argv
    request = json.loads(raw)
    parent = int(request["parent"])
    try:
        probe = _load(target, function)
        netns.enter_private_netns(request["sysctls"])
        result = trio.run(_child, probe, request["seconds"], request["kwargs"], parent)
        answer: dict[str, Any] = {"ok": True, "result": result}
    except Exception as exc:
        answer = {"ok": False, "kind": type(exc).__name__, "error": str(exc),
                  "traceback": traceback.format_exc()}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

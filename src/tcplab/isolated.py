"""Running one probe in a child process that has a fresh network namespace of its own.

A scenario declares one set of sysctls, and its process lives in one namespace. To compare
settings (``tcp_tw_reuse`` 0 against 1), or to read a tunable's default in a namespace that
nobody has touched, a scenario runs a *probe* — an async function of its own module — in a
child process, by the protocol ``tcplab run`` uses for its runs
(``tcplab.kernel.process.run_in_child``). The child loads the probe's module (the one loader,
``catalog.import_file``), unshares a new namespace (``netns.enter_private_netns``), sets that
probe's sysctls there, opens its own ``Lab``, awaits the function, and replies with its
JSON-able result.

Why a process and not a thread: a namespace belongs to a thread, and trio's worker threads
are shared; a process also takes its namespace, sockets and timers with it when it dies.
Clean-up holds however the run ends: the parent stops the child when its deadline passes or
it is cancelled, and the kernel tells the child (SIGTERM, its death signal) as soon as the
parent is gone, which the child turns into a cancellation: its lab closes, nothing is orphaned.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import trio

from tcplab import catalog
from tcplab.expect import ExpectationFailed
from tcplab.kernel import netns, process, sysctl
from tcplab.lab import Lab

Probe = Callable[..., Awaitable[Any]]


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
    request = {"target": str(target), "function": function, "sysctls": dict(sysctls or {}),
               "seconds": seconds, "kwargs": kwargs}
    done = await process.run_in_child("tcplab.isolated:serve_probe", request, seconds=seconds)
    if done.status is None:
        raise ProbeCrashed(f"probe {function} still running {done.limit:.0f} s after it began")
    answer = done.reply
    if answer is None:
        raise ProbeCrashed(f"probe {function} exited {done.status} without a result: "
                           f"{done.stderr_tail()}")
    if answer["ok"]:
        return answer["value"]
    if answer["kind"] == "ExpectationFailed":
        raise ExpectationFailed(f"in probe {function} {dict(sysctls or {})}: {answer['error']}")
    raise ProbeCrashed(f"probe {function} crashed: {answer['error']}\n{answer['traceback']}")


K = TypeVar("K", bound=Hashable)


async def run_isolated_each(
    target: str | Path,
    function: str,
    runs: Mapping[K, tuple[Mapping[str, str | int], Mapping[str, Any]]],
    *,
    seconds: float,
) -> dict[K, Any]:
    """``run_isolated`` once per entry of ``runs`` (key -> sysctls, keyword arguments), all at
    once, each in its own namespace: the same probe under the settings it compares. Results
    come back in ``runs``' order; the first probe that fails is raised as itself."""
    results: dict[K, Any] = {}
    failures: list[Exception] = []

    async def one(key: K, sysctls: Mapping[str, str | int], kwargs: Mapping[str, Any]) -> None:
        try:
            results[key] = await run_isolated(target, function, sysctls=sysctls,
                                              seconds=seconds, **kwargs)
        except Exception as exc:  # raised below as itself, not inside an exception group
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        for key, (sysctls, kwargs) in runs.items():
            nursery.start_soon(one, key, sysctls, kwargs)
    if failures:
        raise failures[0]
    return {key: results[key] for key in runs}


async def fresh_sysctls(names: list[str]) -> dict[str, str | None]:
    """The values of ``names`` in a brand-new network namespace: this kernel's defaults for a
    namespace, whatever the host's administrator has tuned (None: no such sysctl here)."""
    result: dict[str, str | None] = await run_isolated(__name__, "read_sysctls", names=names)
    return result


async def read_sysctls(lab: Lab, names: list[str]) -> dict[str, str | None]:
    """Probe: read ``names`` where it runs (see ``fresh_sysctls``)."""
    return {name: sysctl.read(name) for name in names}


# -- the child's side ------------------------------------------------------------------


def serve_probe(target: str, function: str, sysctls: dict[str, str | int], seconds: float,
                kwargs: dict[str, Any]) -> Any:
    """In the child (``run_in_child``): load the probe, enter a fresh namespace, run it."""
    if target.endswith(".py"):
        path = Path(target)
        module = catalog.import_file(path, f"tcplab_probe_{path.stem}")
    else:
        module = importlib.import_module(target)
    probe: Probe = getattr(module, function)
    netns.enter_private_netns(sysctls)
    return trio.run(_child, probe, seconds, kwargs)


async def _child(probe: Probe, seconds: float, kwargs: dict[str, Any]) -> Any:
    stop = trio.CancelScope()
    with process.sigterm_cancels(stop), stop:
        async with Lab() as lab:
            with trio.fail_after(seconds):
                return await probe(lab, **kwargs)
    raise KeyboardInterrupt  # stopped (SIGTERM): the parent gave up on us, or is gone

"""Reading a sysctl's default as a fresh network namespace gets it.

A scenario's own namespace has the sysctls it declared, and the host's values may have been
tuned, so neither says what this kernel starts with. ``unshare --net`` in a child process
gives a brand-new namespace whose per-namespace sysctls hold the kernel's initial values
(some scaled to memory, like tcp_max_syn_backlog); the child exits at once, and its
namespace with it.
"""

from __future__ import annotations

import trio

from tcplab.kernel import sysctl


async def fresh_netns_values(*names: str) -> dict[str, str]:
    """``{name: value}`` as a new network namespace reports them (values whitespace-folded)."""
    paths = [str(sysctl.path_of(name)) for name in names]
    with trio.fail_after(5):
        done = await trio.run_process(["unshare", "--net", "cat", *paths], capture_stdout=True)
    lines = done.stdout.decode().splitlines()
    if len(lines) != len(names):
        raise RuntimeError(f"unshare --net cat {paths} printed {lines!r}")
    return {name: " ".join(line.split()) for name, line in zip(names, lines, strict=True)}


async def fresh_netns_ints(*names: str) -> dict[str, int]:
    """Like ``fresh_netns_values`` for integer sysctls."""
    return {k: int(v) for k, v in (await fresh_netns_values(*names)).items()}

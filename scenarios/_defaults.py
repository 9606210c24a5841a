"""Integer sysctls as a fresh network namespace gets them (this kernel's defaults).

A scenario's own namespace has the sysctls it declared, and the host's values may have been
tuned, so neither says what this kernel starts with; ``tcplab.isolated.fresh_sysctls``
reads them in a brand-new namespace of a child process.
"""

from __future__ import annotations

from tcplab.isolated import fresh_sysctls


async def fresh_netns_ints(*names: str) -> dict[str, int]:
    """``{name: value}`` in a new network namespace; a sysctl this kernel lacks is an error."""
    values = await fresh_sysctls(list(names))
    missing = [name for name, value in values.items() if value is None]
    if missing:
        raise RuntimeError(f"this kernel has no sysctl {', '.join(missing)}")
    return {name: int(str(value)) for name, value in values.items()}

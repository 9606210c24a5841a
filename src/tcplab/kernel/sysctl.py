"""Reading sysctls. tcplab never writes the host's: see ``kernel.netns`` for private ones."""

from __future__ import annotations

from pathlib import Path

PROC_SYS = Path("/proc/sys")

#: The tunables the articles talk about, read into every results file.
WATCHED = (
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_tw_recycle",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_orphan_retries",
    "net.core.somaxconn",
)


def path_of(name: str) -> Path:
    """``net.ipv4.tcp_fin_timeout`` -> ``/proc/sys/net/ipv4/tcp_fin_timeout``."""
    return PROC_SYS / name.replace(".", "/")


def read(name: str) -> str | None:
    """The value as the kernel prints it (whitespace folded), or None if this kernel lacks it."""
    try:
        return " ".join(path_of(name).read_text().split())
    except (FileNotFoundError, PermissionError):
        return None


def read_int(name: str) -> int | None:
    value = read(name)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def read_watched() -> dict[str, str | None]:
    """Every watched tunable: None where this kernel has no such sysctl."""
    return {name: read(name) for name in WATCHED}

"""tcplab.servers: real servers as lab children that leave nothing behind, however the run
ends (normally, an exception, a timeout, Ctrl-C), and the helpers that find them."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from tcplab import Lab, servers
from tcplab.expect import eventually

ROOT = os.geteuid() == 0
needs_uvicorn = pytest.mark.skipif(servers.version_of("uvicorn") == "not installed",
                                   reason="uvicorn is not installed (tcplab[realworld])")


def _left(server: servers.Server) -> tuple[set[int], bool]:
    """The server's processes still alive, and whether its directory still exists."""
    return servers.tree_pids(server.child.pid), server.directory.exists()


def test_release_finds_a_target_install_and_reads_its_version(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "RELEASES", tmp_path)
    assert servers.release("uvicorn", "0.15.0") is None
    info = tmp_path / "uvicorn-0.15.0" / "uvicorn-0.15.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: uvicorn\nVersion: 0.15.0\n")
    assert servers.release("uvicorn", "0.15.0") == tmp_path / "uvicorn-0.15.0"
    assert servers.version_of("uvicorn", tmp_path / "uvicorn-0.15.0") == "0.15.0"
    assert servers.version_of("no-such-dist-tcplab") == "not installed"


def test_postgres_is_found_on_path_or_in_the_newest_debian_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for version in ("9", "15", "13"):
        bin_dir = tmp_path / version / "bin"
        bin_dir.mkdir(parents=True)
        for name in ("postgres", "initdb"):
            (bin_dir / name).write_text("#!/bin/sh\n")
            (bin_dir / name).chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(glob, "glob", lambda pattern: [
        str(tmp_path / v / "bin") for v in ("9", "15", "13")])
    assert servers.postgres_binaries() == (tmp_path / "15/bin/postgres", tmp_path / "15/bin/initdb")
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    assert servers.postgres_binaries() is None


def test_a_process_tree_includes_children_in_sessions_of_their_own() -> None:
    code = ("import os, subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import os, time; os.setsid(); time.sleep(30)']); time.sleep(30)")
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while len(servers.tree_pids(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        tree = servers.tree_pids(parent.pid)
        assert parent.pid in tree and len(tree) == 2
    finally:
        for pid in servers.tree_pids(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.wait()


@needs_uvicorn
async def test_a_server_and_its_directory_are_gone_after_an_exception_or_a_timeout() -> None:
    async with Lab() as lab:
        with pytest.raises(RuntimeError, match="boom"):
            async with servers.uvicorn(lab) as failed:
                conn = await servers.dial(lab, failed)
                await eventually(lambda: servers.owner(conn.server.observe(), failed.pids()),
                                 what="uvicorn accepting the connection")
                raise RuntimeError("boom")
        assert _left(failed) == (set(), False)
        with trio.move_on_after(0.5):
            async with servers.uvicorn(lab) as timed_out:
                await trio.sleep(30)
        assert _left(timed_out) == (set(), False)


@needs_uvicorn
def test_ctrl_c_stops_the_server_and_removes_its_directory(tmp_path: Path) -> None:
    script = tmp_path / "hold.py"
    script.write_text("\n".join([
        "import trio",
        "from tcplab import Lab, servers",
        "async def main():",
        "    async with Lab() as lab, servers.gunicorn(lab) as server:",
        "        print(server.child.pid, server.directory, flush=True)",
        "        await trio.sleep(60)",
        "trio.run(main)",
    ]))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(servers.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]))
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env=env)
    assert holder.stdout is not None
    pid, directory = holder.stdout.readline().split()
    assert servers.tree_pids(int(pid)) and Path(directory).exists()
    holder.send_signal(signal.SIGINT)
    holder.wait(timeout=20)
    assert servers.tree_pids(int(pid)) == set()
    assert not Path(directory).exists()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")
async def test_redis_retries_on_another_port_when_its_port_was_taken(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = [taken.getsockname()[1], servers.free_port()]
        monkeypatch.setattr(servers, "free_port", lambda host="127.0.0.1": ports.pop(0))
        async with Lab() as lab, servers.redis(lab) as server:
            assert server.port != taken.getsockname()[1] and ports == []
    assert _left(server) == (set(), False)


@pytest.mark.skipif(not ROOT or servers.postgres_binaries() is None,
                    reason="needs root and PostgreSQL (postgres, initdb)")
async def test_postgres_runs_unprivileged_and_leaves_nothing() -> None:
    async with Lab() as lab, servers.postgres(lab) as server:
        pids = server.pids()
        assert len(pids) > 1  # the postmaster and its own children
        assert all(os.stat(f"/proc/{pid}").st_uid == servers.unprivileged_user().pw_uid
                   for pid in pids)
    assert _left(server) == (set(), False)

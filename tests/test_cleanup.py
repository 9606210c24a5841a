"""Nothing outlives a lab: not after a crash, a failed expectation, a cancellation, a
timeout, a failing scenario run by the runner, or Ctrl-C.

"Nothing" is checked from outside the code under test: the fds listed in /proc/self/fd,
the process tree (psutil), and the kernel's socket tables (sock_diag). A closed socket may
linger in the tables in TIME_WAIT or as an orphan finishing its close — that is the kernel's
business, owned by no process (inode 0) — but no socket may still be held by an fd.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest
import trio

from tcplab import Lab, TcpState
from tcplab.errors import EXIT_FAILED, EXIT_INTERRUPTED
from tcplab.expect import ExpectationFailed, holds, reaches
from tcplab.kernel.diag import SockDiag
from tcplab.kernel.model import SocketRecord

ROOT = Path(__file__).resolve().parents[1]
S = TcpState
#: A child that ignores SIGINT (the disposition survives exec): only the lab's kill ends it.
STUBBORN_CHILD = ["sh", "-c", "trap '' INT; exec sleep 300"]


def open_fds() -> dict[str, str]:
    """This process's fds and what each points to (``socket:[inode]``, ``pipe:[...]``...)."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the fd of the listdir itself
            continue
    return fds


def held_records(tuples: set[tuple[str, str]]) -> list[SocketRecord]:
    """Sockets with these four-tuples (``str`` of local and remote address) that a process
    still holds (inode != 0: TIME_WAIT and orphans have none).

    Exact four-tuples, not ports: the host's other sockets (other tests, other users) may
    reuse a port number the moment a lab lets it go.
    """
    ports = {int(local.rsplit(":", 1)[1]) for local, _ in tuples}
    with SockDiag() as diag:
        found = {r.four_tuple: r for port in ports for r in diag.dump(port=port)
                 if (str(r.four_tuple.local), str(r.four_tuple.remote)) in tuples and r.inode != 0}
    return list(found.values())


def lab_tuples(lab: Lab) -> set[tuple[str, str]]:
    """Every four-tuple a lab's listeners and connections had."""
    found = {(str(c.four_tuple.local), str(c.four_tuple.remote))
             for c in (e for conn in lab.connections for e in conn.ends)}
    return found


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The pids among ``pids`` still alive (not zombies) after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


# -- in this process: a Lab whose body goes wrong ------------------------------------------


async def raises(lab: Lab, outer: trio.CancelScope) -> None:
    raise RuntimeError("the scenario crashed")


async def expectation_fails(lab: Lab, outer: trio.CancelScope) -> None:
    conn = lab.connections[-1]
    await holds(conn.server, S.ESTABLISHED, for_=2.0)  # it is CLOSE_WAIT: fails at once


async def cancelled(lab: Lab, outer: trio.CancelScope) -> None:
    outer.cancel()  # as a nursery sibling's failure or a caller's move_on_after would
    await trio.sleep_forever()


async def times_out(lab: Lab, outer: trio.CancelScope) -> None:
    with trio.fail_after(0.2):
        await trio.sleep_forever()


Ending = Callable[[Lab, trio.CancelScope], Awaitable[None]]
ENDINGS: list[tuple[Ending, type[BaseException] | None]] = [
    (raises, RuntimeError),
    (expectation_fails, ExpectationFailed),
    (cancelled, None),
    (times_out, trio.TooSlowError),
]


@pytest.mark.parametrize(("ending", "error"), ENDINGS, ids=[e[0].__name__ for e in ENDINGS])
async def test_a_lab_that_goes_wrong_leaves_no_fd_socket_or_child(
    ending: Ending, error: type[BaseException] | None
) -> None:
    before = open_fds()
    inodes: set[str] = set()
    pids: list[int] = []
    tuples: set[tuple[str, str]] = set()

    async def scenario(outer: trio.CancelScope) -> None:
        async with Lab() as lab:
            listener = await lab.listen()
            tuples.add((str(listener.address), str(listener.four_tuple.remote)))
            leaked = await lab.connect(listener)
            leaked.client.leak()
            leaked.server.leak()
            await (await lab.connect(listener)).client.send_eof()
            await reaches(lab.connections[-1].server, S.CLOSE_WAIT)
            pids.append((await lab.spawn(STUBBORN_CHILD)).pid)
            tuples.update(lab_tuples(lab))
            inodes.update(v for v in open_fds().values() if v.startswith("socket:"))
            inodes.difference_update(before.values())  # trio's own wakeup sockets
            assert len(held_records(tuples)) == 5  # the listener and two pairs, held by us
            await ending(lab, outer)

    with trio.CancelScope() as outer:
        if error is None:
            await scenario(outer)
        else:
            with pytest.raises(error):
                await scenario(outer)
    assert outer.cancelled_caught == (error is None)

    after = open_fds()
    assert after == before, f"fds left open: {set(after.items()) - set(before.items())}"
    assert inodes and not inodes & set(after.values())
    assert held_records(tuples) == []
    assert wait_gone(pids) == []
    assert psutil.Process().children() == []


# -- through the runner: a failing scenario file, and Ctrl-C ----------------------------------

LEAKY = '''
"""Leaks sockets and a child on purpose, writes its four-tuples and the child's pid, then
{how}."""

import json
from pathlib import Path

from tcplab import Lab, Scenario, TcpState, Verdicts
from tcplab.expect import holds, reaches

HERE = Path(__file__).parent
scenario = Scenario(id="{id}", title="leaks and {how}", claims=("C01",), timeout={timeout})


@scenario.body
async def run(lab: Lab, verdicts: Verdicts) -> None:
    listener = await lab.listen()
    for _ in range(3):
        conn = await lab.connect(listener)
        conn.client.leak()
        conn.server.leak()
    half = await lab.connect(listener)
    await half.client.send_eof()
    await reaches(half.server, TcpState.CLOSE_WAIT)  # the FIN is in: CLOSE_WAIT is held below
    child = await lab.spawn({child!r})
    ends = [e for c in lab.connections for e in c.ends]
    tuples = [[str(listener.address), str(listener.four_tuple.remote)]]
    tuples += [[str(e.four_tuple.local), str(e.four_tuple.remote)] for e in ends]
    (HERE / "tuples.json").write_text(json.dumps(tuples))
    (HERE / "child").write_text(str(child.pid))
    await holds(half.server, TcpState.{hold}, for_={hold_for})


if __name__ == "__main__":
    scenario.main()
'''


def write_scenario(directory: Path, *, id: str, how: str, hold: str, hold_for: float,
                   timeout: float) -> Path:
    directory.mkdir()
    path = directory / "leaky.py"
    path.write_text(textwrap.dedent(LEAKY).format(id=id, how=how, hold=hold, hold_for=hold_for,
                                                 timeout=timeout, child=STUBBORN_CHILD))
    return path


def _holding(directory: Path) -> bool:
    """True once the leaky scenario wrote its child's pid and holds a CLOSE_WAIT socket."""
    try:
        int((directory / "child").read_text())
        tuples = read_tuples(directory)
    except (OSError, ValueError):  # not written yet, or being written
        return False
    return any(r.state is TcpState.CLOSE_WAIT for r in held_records(tuples))


def read_tuples(directory: Path) -> set[tuple[str, str]]:
    return {(local, remote) for local, remote in json.loads((directory / "tuples.json").read_text())}


def tcplab_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def test_a_failing_scenario_file_exits_1_with_results_and_leaves_nothing(tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    write_scenario(scenarios, id="leaky-failure", how="fails", hold="ESTABLISHED", hold_for=2.0,
                   timeout=30)
    done = subprocess.run(
        [sys.executable, "-m", "tcplab", "run", "--scenarios", str(scenarios),
         "--results", str(tmp_path / "results")],
        capture_output=True, text=True, timeout=120, env=tcplab_env(), check=False,
    )
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    (results,) = (tmp_path / "results").glob("*/results.json")
    data = json.loads(results.read_text())
    (run,) = data["scenarios"]
    assert run["id"] == "leaky-failure" and run["status"] == "failed"
    assert "expected ESTABLISHED to hold" in run["reason"]
    assert run["timelines"] and data["summary"][0]["failed"] == 1

    tuples = read_tuples(scenarios)
    timeline_tuples = {(e["socket"]["local"], e["socket"]["remote"])
                       for t in run["timelines"] for e in t if e["socket"]}
    assert timeline_tuples and timeline_tuples <= tuples
    assert held_records(tuples) == []  # TIME_WAIT and orphans only: no process holds one
    assert wait_gone([int((scenarios / "child").read_text())]) == []


@pytest.mark.parametrize("group", [pytest.param(True, id="terminal-ctrl-c"),
                                   pytest.param(False, id="kill-int-runner-only")])
def test_ctrl_c_exits_130_in_one_line_and_leaves_nothing(tmp_path: Path, group: bool) -> None:
    """A terminal's Ctrl-C signals the whole foreground process group: the runner, its
    scenario child and the grandchild (which ignores it here). ``kill -INT`` reaches the
    runner alone: its children must not outlive it either."""
    scenarios = tmp_path / "scenarios"
    write_scenario(scenarios, id="leaky-hold", how="holds CLOSE_WAIT for minutes",
                   hold="CLOSE_WAIT", hold_for=240.0, timeout=300)
    runner = subprocess.Popen(
        [sys.executable, "-m", "tcplab", "run", "--scenarios", str(scenarios),
         "--results", str(tmp_path / "results")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tcplab_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        # Polled, not slept: the child's pid written in full and the half-closed server end
        # in CLOSE_WAIT (the state the scenario then holds) before the interrupt.
        while not _holding(scenarios):
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "the scenario never started holding"
            time.sleep(0.05)
        family = [p.pid for p in psutil.Process(runner.pid).children(recursive=True)]
        tuples = read_tuples(scenarios)
        assert len(held_records(tuples)) == 9  # a listener and four pairs
        if group:
            os.killpg(runner.pid, signal.SIGINT)
        else:
            os.kill(runner.pid, signal.SIGINT)
        stdout, stderr = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()

    assert runner.returncode == EXIT_INTERRUPTED, stdout + stderr
    # Where the scenarios came from, progress lines, then where the finished runs went.
    source, *progress, last = stderr.strip().splitlines()
    assert source.startswith("tcplab: scenarios from "), stderr
    assert progress[0] == "[0/1] start leaky-hold", stderr
    assert all(line.startswith("[0/1] ") for line in progress), stderr  # a heartbeat, maybe
    assert last.startswith("tcplab: interrupted; 0 of 1 run finished, kept in "), stderr
    assert Path(last.rsplit(" ", 1)[1]).name == "results.json"
    assert Path(last.rsplit(" ", 1)[1]).is_file()
    assert int((scenarios / "child").read_text()) in family
    assert wait_gone(family) == []
    assert held_records(tuples) == []

"""``tcplab.isolated``: probes run in a child process inside a fresh network namespace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tcplab.expect import ExpectationFailed
from tcplab.isolated import ProbeCrashed, fresh_sysctls, run_isolated, run_isolated_each
from tcplab.kernel import process, sysctl
from tcplab.lab import Lab

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


async def probe_where(lab: Lab, name: str) -> dict[str, str | None]:
    """Probe: the namespace it runs in, and one sysctl there."""
    return {"netns": os.readlink("/proc/self/ns/net"), "value": sysctl.read(name)}


async def probe_fails(lab: Lab) -> None:
    raise ExpectationFailed("the kernel said no")


async def probe_crashes(lab: Lab) -> None:
    raise KeyError("oops")


async def test_probe_runs_in_its_own_namespace_with_its_sysctls() -> None:
    answer = await run_isolated(__file__, "probe_where", sysctls={"net.ipv4.tcp_fin_timeout": 7},
                                name="net.ipv4.tcp_fin_timeout")
    assert answer["value"] == "7"
    assert answer["netns"] != os.readlink("/proc/self/ns/net")


async def test_fresh_sysctls_reads_a_new_namespace() -> None:
    values = await fresh_sysctls(["net.ipv4.tcp_fin_timeout", "net.ipv4.no_such_thing"])
    assert values["net.ipv4.tcp_fin_timeout"] is not None
    assert values["net.ipv4.no_such_thing"] is None


async def test_expectation_failures_come_back_as_such() -> None:
    with pytest.raises(ExpectationFailed, match="the kernel said no"):
        await run_isolated(__file__, "probe_fails")
    with pytest.raises(ProbeCrashed, match="KeyError"):
        await run_isolated(__file__, "probe_crashes")


async def probe_hangs(lab: Lab, pidfile: str) -> None:
    """Probe: blocks trio (a sync sleep), so only the parent's deadline can end it."""
    import time

    Path(pidfile).write_text(str(os.getpid()))  # noqa: ASYNC240 - blocking on purpose
    time.sleep(30)  # noqa: ASYNC251 - a probe that never yields to trio


async def test_a_hung_child_is_stopped_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "GRACE", 0.5)  # the parent's: deadline and clean-up time
    pidfile = tmp_path / "pid"
    # 3 s: time to start even on a loaded machine, and far short of the probe's 30 s sleep
    with pytest.raises(ProbeCrashed, match="still running 4 s after it began"):
        await run_isolated(__file__, "probe_hangs", seconds=3, pidfile=str(pidfile))
    with pytest.raises(ProcessLookupError):  # killed and reaped: nothing outlives the call
        os.kill(int(pidfile.read_text()), 0)


async def test_run_in_child_returns_the_reply_or_the_error() -> None:
    done = await process.run_in_child("json:dumps", {"obj": [1, "two"]}, seconds=10)
    assert (done.status, done.reply) == (0, {"ok": True, "value": '[1, "two"]'})
    done = await process.run_in_child("json:loads", {"s": "{"}, seconds=10)
    assert done.status == 0 and done.reply is not None
    assert done.reply["ok"] is False and done.reply["kind"] == "JSONDecodeError"


async def test_each_setting_runs_in_its_own_namespace_and_a_failure_is_raised_as_itself() -> None:
    fin = "net.ipv4.tcp_fin_timeout"
    answers = await run_isolated_each(__file__, "probe_where",
                                      {v: ({fin: v}, {"name": fin}) for v in (7, 9, 11)},
                                      seconds=20)
    assert list(answers) == [7, 9, 11]
    assert [a["value"] for a in answers.values()] == ["7", "9", "11"]
    assert os.readlink("/proc/self/ns/net") not in {a["netns"] for a in answers.values()}
    with pytest.raises(ExpectationFailed):
        await run_isolated_each(__file__, "probe_fails", {"x": ({}, {})}, seconds=20)

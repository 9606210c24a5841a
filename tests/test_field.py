"""The field harness's own logic (``nox -s plugin-field``), without network and without suites.

The probe's reading of the leak check's records (made by tcplab's own ``leak_record``, so a
change of their fields shows here first), its following of a socket's inode until it closes, the classification rule, and the table built from runs.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from field import tcplab_field_probe as probe
from field.table import (
    WITH,
    WITHOUT,
    Closing,
    FlaggedSocket,
    Run,
    classify,
    render_markdown,
    summarize,
    to_json,
)
from tcplab.kernel.model import Address, FourTuple, SocketRecord
from tcplab.leaks import HeldSocket, ThreadFate
from tcplab.origins import Origin
from tcplab.pytest_leaks import PROPERTY, _Flag, leak_record
from tcplab.states import TcpState

TEST = "tests/test_x.py::test_leaky"


def _report(records: list[dict[str, Any]], nodeid: str = TEST) -> pytest.TestReport:
    """A teardown report as the leak check leaves it: a JSON record per flagged socket."""
    return pytest.TestReport(nodeid, ("tests/test_x.py", 1, "test_leaky"), {}, "failed",
                             "the leak check's text, not read", "teardown",
                             user_properties=[("other", "x"), *(
                                 (PROPERTY, json.dumps(r)) for r in records)])


def test_the_probe_follows_the_inodes_of_the_leak_checks_own_records(tmp_path: Path) -> None:
    listener = SocketRecord(state=TcpState.LISTEN, inode=11, four_tuple=FourTuple(
        Address("127.0.0.1", 40000), Address("0.0.0.0", 0)))
    origin = Origin((("/root/tests/test_x.py", 12, "test_leaky"),))
    with socket.socket() as held:  # TCP, never bound: no traffic
        fd, inode = held.fileno(), probe.socket_inode(held.fileno())
        assert inode is not None
        waiting = SocketRecord(state=TcpState.CLOSE_WAIT, inode=inode, recv_q=1,
                               four_tuple=FourTuple(Address("::1", 40001), Address("::1", 5)))
        records = [leak_record(_Flag(HeldSocket(7, listener), origin, None), TEST, Path("/root")),
                   leak_record(_Flag(HeldSocket(fd, waiting), None, None,
                                     (ThreadFate("Thread-3 (serve)", None),), 2.0),
                               TEST, Path("/root"))]
        tracker = probe.Probe(tmp_path / "out.json")
        tracker.flag(_report(records))
        (flag,) = tracker.flagged
        first, second = flag["sockets"]
    assert (flag["nodeid"], flag["phase"]) == (TEST, "teardown")
    assert [(f["inode"], f["fd"], f["local"], f["remote"], f["state"]) for f in (first, second)] \
        == [(11, 7, "127.0.0.1:40000", "0.0.0.0:0", "LISTEN"),
            (inode, fd, "[::1]:40001", "[::1]:5", "CLOSE_WAIT")]
    assert first["where"] == ["opened at tests/test_x.py:12 in test_leaky",
                              "  tests/test_x.py:12 in test_leaky"]
    assert first["detail"] == "a listener nobody closed"
    assert second["record"]["threads"] == [{"name": "Thread-3 (serve)", "ended_after_s": None}]
    # inode 11 was never this process's: closed before the flag came, not followed; the
    # other one is followed until it closes (here, by the end of the ``with``)
    assert (first["held_at_flag"], second["held_at_flag"]) == (False, True)
    assert tracker.pending == [second]
    tracker.check("call")
    assert second["closing"]["point"] == "call"


def test_a_report_without_records_is_no_flag(tmp_path: Path) -> None:
    tracker = probe.Probe(tmp_path / "out.json")
    tracker.flag(_report([]))
    assert tracker.flagged == [] and probe.flagged_records(_report([])) == []


def _entry(sock: socket.socket) -> dict[str, Any]:
    inode = probe.socket_inode(sock.fileno())
    assert inode is not None
    return {"fd": sock.fileno(), "inode": inode, "flagged_at": 0.0, "closing": None}


def test_the_probe_names_the_point_where_a_followed_socket_closed(tmp_path: Path) -> None:
    tracker = probe.Probe(tmp_path / "out.json")
    kept, closed = socket.socket(), socket.socket()  # TCP, never bound: no traffic
    try:
        first, second = _entry(kept), _entry(closed)
        server = threading.Thread(target=closed.close, name="Thread-9 (serve)")
        second["threads"] = [(1, "Thread-0 (gone)"), *probe._threads()]
        tracker.pending = [first, second]
        tracker.current = TEST
        tracker.check("fixture", fixture="server", scope="function")
        assert first["closing"] is None and second["closing"] is None
        server.start()
        server.join()
        tracker.check("fixture", fixture="server", scope="function")
        closing = second.get("closing") or {}
        assert (closing["point"], closing["fixture"], closing["during"]) == (
            "fixture", "server", TEST)
        assert closing["threads_ended"] == ["Thread-0 (gone)"]  # alive at the flag, ended
        assert tracker.pending == [first]
    finally:
        kept.close()
        closed.close()


def test_a_finalizer_is_named_by_its_fixture_or_its_callable() -> None:
    class FixtureDef:  # what a fixture's finish is bound to: pytest's FixtureDef
        argname, scope = "aiohttp_client", "function"

        def finish(self, request: object) -> None: ...

    assert probe._finalizer_label(functools.partial(FixtureDef().finish, request=None)) == (
        "fixture", {"fixture": "aiohttp_client", "scope": "function"})
    with socket.socket() as sock:
        assert probe._finalizer_label(sock.close) == ("finalizer", {"finalizer": "socket.close"})


def _socket(**changes: Any) -> FlaggedSocket:
    fields: dict[str, Any] = {"nodeid": TEST, "fd": 9, "local": "127.0.0.1:1",
                              "remote": "127.0.0.1:2", "state": "ESTABLISHED"}
    fields.update(changes)
    return FlaggedSocket(**fields)


@pytest.mark.parametrize(("sock", "real", "cause"), [
    (_socket(open_at_end=True), True, "still open at session end"),
    (_socket(closing=Closing("gc-at-end", during=None)), True,
     "closed only by garbage collection at session end"),
    (_socket(held_at_flag=False), False, "closed before the flag was reported"),
    (_socket(closing=Closing("fixture", TEST, "aiohttp_client", "function")), False,
     "closed by fixture teardown: aiohttp_client"),
    (_socket(closing=Closing("fixture", "tests/test_x.py::test_next", "server", "module")),
     False, "closed by module-scoped fixture server"),
    (_socket(closing=Closing("finalizer", TEST, finalizer="socket.close")), False,
     "closed by a finalizer: socket.close"),
    (_socket(closing=Closing("finalizer", "tests/test_x.py::test_next", finalizer="stop",
                             node="tests/test_x.py")), False, "closed by a finalizer: stop"),
    (_socket(closing=Closing("report", "tests/test_x.py::test_next", after_s=1.0)), False,
     "closed later, outside its teardown"),
    # a later test's own function-scoped fixture cannot have closed an earlier test's socket
    (_socket(closing=Closing("fixture", "tests/test_x.py::test_next", "server", "function",
                             threads_ended=("Thread-5 (serve)",))), False,
     "closed later by a thread that ended then"),
    (_socket(closing=Closing("finalizer", "tests/test_x.py::test_next", finalizer="close",
                             node="tests/test_x.py::test_next")), False,
     "closed later, outside its teardown"),
])
def test_the_classification_rule(sock: FlaggedSocket, real: bool, cause: str) -> None:
    classification = classify(sock)
    assert (classification.real, classification.cause) == (real, cause)


def _probe_socket(fd: int, *, closing: dict[str, Any] | None = None,
                  open_at_end: bool = False) -> dict[str, Any]:
    return {"fd": fd, "local": f"127.0.0.1:{fd}", "remote": "0.0.0.0:0", "state": "LISTEN",
            "held_at_flag": True, "closing": closing, "open_at_end": open_at_end, "where": []}


def _run(mode: str, index: int, wall: float, flagged: list[dict[str, Any]]) -> Run:
    outcomes = {f"t{i}": "passed" for i in range(8)} | {"t8": "skipped", "t9": "failed"}
    for flag in flagged:
        outcomes[flag["nodeid"]] = "failed"
    return Run.from_record({"suite": "demo", "mode": mode, "index": index, "wall_s": wall,
                            "exitstatus": 1, "probe": {"outcomes": outcomes,
                                                       "flagged": flagged}})


def test_the_table_takes_medians_and_counts_each_flagged_test_once() -> None:
    leak = {"nodeid": "t0", "sockets": [_probe_socket(5, open_at_end=True)]}
    alarm = {"nodeid": "t1", "sockets": [_probe_socket(6, closing={
        "point": "fixture", "during": "t1", "fixture": "server", "scope": "function"})]}
    runs = [_run(WITHOUT, 0, 10.0, []), _run(WITH, 0, 12.0, [leak, alarm]),
            _run(WITHOUT, 1, 11.0, []), _run(WITH, 1, 13.0, [leak]),
            _run(WITHOUT, 2, 30.0, []), _run(WITH, 2, 12.5, [leak, alarm])]
    summary = summarize("demo", "demo 1.0", runs)
    assert (summary.tests, summary.skipped, summary.runs) == (10, 1, 3)
    assert (summary.without_passed, summary.without_failed, summary.without_s) == (8, 1, 11.0)
    assert (summary.with_passed, summary.with_leak_failures, summary.with_s) == (6, 2, 12.5)
    assert summary.flagged_per_run == (2, 1, 2)
    assert summary.ratio == pytest.approx(12.5 / 11.0)
    assert summary.pair_ratios == pytest.approx((1.2, 13 / 11, 12.5 / 30))
    assert summary.overhead_ms_per_test == pytest.approx(150.0)
    assert [t.nodeid for t in summary.real] == ["t0"]
    assert [(t.nodeid, t.runs) for t in summary.false] == [("t1", 2)]
    assert summary.false_causes() == {"closed by fixture teardown: server": 1}
    markdown = render_markdown([summary])
    assert "| demo 1.0 (10; 1 skipped or xfail) | 8 passed, 1 failed, 11.0 s |" in markdown
    assert "1.14× (+150.0 ms/test; pairs: 1.20, 1.18, 0.42) | 1 / 1 |" in markdown
    assert "| demo | `t0` | 3/3 | fd 5 127.0.0.1:5 -> 0.0.0.0:0 LISTEN |" in markdown
    assert "| demo | closed by fixture teardown: server | 1 |" in markdown
    assert "Every flagged test" not in markdown
    assert "| demo | `t1` | 2/3 | no | closed by fixture teardown: server |" in render_markdown(
        [summary], every=True)
    (data,) = json.loads(json.dumps(to_json([summary])))
    assert (data["real"], data["false"], data["ratio"]) == (1, 1, 1.136)


def test_a_test_real_in_one_run_and_false_in_another_counts_as_real_and_is_named() -> None:
    real = {"nodeid": "t0", "sockets": [_probe_socket(5, open_at_end=True)]}
    closed = {"nodeid": "t0", "sockets": [_probe_socket(5, closing={
        "point": "report", "during": "t3", "after_s": 2.0})]}
    summary = summarize("demo", "demo", [_run(WITH, 0, 1.0, [real]), _run(WITH, 1, 1.0, [closed])])
    (test,) = summary.flagged
    assert test.real and not test.consistent
    assert "Classified differently between runs" in render_markdown([summary])

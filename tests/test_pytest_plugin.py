"""The tcplab pytest plugin, exercised the way a user meets it: inner pytest sessions
(``pytester``) running small test files that leak sockets, or don't, on real loopback."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

INI = """
[pytest]
trio_mode = true
"""

LEAKY = '''
import socket

import pytest
import trio

KEEP = []  # what a buggy connection registry does: hold sockets nobody closes


async def _pair():
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = trio.socket.socket()
    await client.connect(listener.getsockname())
    server, _ = await listener.accept()
    listener.close()
    return client, server


@pytest.mark.tcplab_leaks
async def test_server_forgets_to_close():
    client, server = await _pair()
    with open("leaked.txt", "w") as f:  # for the outer test to compare with the message
        f.write(f"{server.getsockname()[0]}:{server.getsockname()[1]} -> "
                f"{server.getpeername()[0]}:{server.getpeername()[1]} {server.fileno()}")
    client.close()  # the peer closes ...
    assert await server.recv(10) == b""  # ... the server reads end-of-file ...
    KEEP.append(server)  # ... and returns without close(): CLOSE_WAIT


@pytest.mark.tcplab_leaks
async def test_closes_everything():
    client, server = await _pair()
    await client.send(b"ping")
    assert await server.recv(10) == b"ping"
    client.close()  # the client closes first: its TIME_WAIT stays, owned by nobody
    assert await server.recv(10) == b""
    server.close()


def test_not_checked_without_marker():
    KEEP.append(socket.socket())
'''

SYNC = '''
import socket

KEEP = []


def test_sync_leak():
    listener = socket.create_server(("127.0.0.1", 0))
    KEEP.append(listener)


def test_sync_clean():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for sock in (client, server, listener):
        sock.close()


def test_fails_on_its_own():
    KEEP.append(socket.socket())
    assert 1 == 2
'''

FIXTURES = '''
import socket

import pytest
import trio

from tcplab import TcpState
from tcplab.expect import gone, holds, reaches


async def test_adopted_sockets(tcplab_adopt):
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname(), timeout=5)  # blocking, stdlib
    server, _ = await trio.socket.from_stdlib_socket(listener).accept()  # trio
    c_end = tcplab_adopt(client, "client")
    s_end = tcplab_adopt(server, "server")
    assert client.gettimeout() == 5  # adopting left the blocking socket as it was
    client.close()
    await reaches(s_end, TcpState.CLOSE_WAIT)
    await reaches(c_end, TcpState.FIN_WAIT2)  # the FIN's ACK may be delayed a little
    await holds(s_end, TcpState.CLOSE_WAIT, for_=0.1)
    server.close()
    await reaches(c_end, TcpState.TIME_WAIT)
    await gone(s_end)
    listener.close()


@pytest.mark.tcplab_leaks  # the thread is waited for (tcplab_leaks_thread_wait)
def test_a_server_thread_closing_a_moment_later_is_no_leak():
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        server, _ = listener.accept()
        while server.recv(100):
            pass
        server.close()  # after the client's FIN: maybe after the test returned
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    client = socket.create_connection(listener.getsockname())
    client.sendall(b"bye")
    client.close()


def test_observer_in_a_sync_test(tcplab_observer, tcplab_held):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    records = tcplab_observer.snapshot(port=port)
    assert [r.state for r in records] == [TcpState.LISTEN]
    held = [h for h in tcplab_held().values() if h.record.four_tuple.local.port == port]
    assert [h.fd for h in held] == [listener.fileno()]
    listener.close()
'''


def _plugin_args() -> list[str]:
    """Load the plugin by module when the installed tcplab predates its entry point."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if "tcplab" in names else ["-p", "tcplab.pytest_plugin"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    return pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", *args)


def test_marker_reports_a_leaking_test_at_its_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_leaky=LEAKY)
    result = _run(pytester)
    result.assert_outcomes(passed=3, errors=1)
    leaked = (pytester.path / "leaked.txt").read_text().rsplit(" ", 1)
    four_tuple, fd = leaked[0], leaked[1]
    output = result.stdout.str()
    assert "ERROR at teardown of test_server_forgets_to_close" in output
    assert "test_server_forgets_to_close: 1 TCP socket of process" in output
    assert "still open after the test's teardown" in output
    line = next(ln for ln in output.splitlines() if four_tuple in ln)
    assert re.search(rf"fd {fd}\s+{re.escape(four_tuple)}\s+CLOSE_WAIT", line), line
    assert "the peer closed it; this process never called close()" in line
    # where: the accept in the helper, on the listener the helper opened
    listen_line = _line_of(LEAKY, "listener = trio.socket.socket()")
    accept_line = _line_of(LEAKY, "server, _ = await listener.accept()")
    assert (f"accepted at test_leaky.py:{accept_line} in _pair, on the listener "
            f"{four_tuple.split(' -> ')[0]} opened at test_leaky.py:{listen_line} in _pair") in output
    # the short stack starts at the test function
    call_line = _line_of(LEAKY, "client, server = await _pair()")
    assert f"test_leaky.py:{call_line} in test_server_forgets_to_close" in output
    # the clean test's TIME_WAIT (no owner) and the unmarked test's socket are not reported
    assert "test_closes_everything" not in output.split("short test summary")[0].split("ERRORS")[-1]
    result.stdout.fnmatch_lines([
        "*tcplab: 1 test (of 2 checked) left TCP sockets open after their teardown*",
        "test_leaky.py::test_server_forgets_to_close: 1 TCP socket",
        "*ERROR*test_server_forgets_to_close*",
    ])


def _line_of(source: str, text: str) -> int:
    """The 1-based line of ``text`` in a test file written by ``makepyfile`` (dedented)."""
    lines = source.strip("\n").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_option_checks_every_test_including_sync_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sync=SYNC)
    result = _run(pytester, "--tcplab-leaks")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    output = result.stdout.str()
    assert re.search(r"fd \d+\s+127\.0\.0\.1:\d+ -> 0\.0\.0\.0:0\s+LISTEN\s+<- a listener nobody closed",
                     output)
    assert f"opened at test_sync.py:{_line_of(SYNC, 'create_server')} in test_sync_leak" in output
    # a test failing on its own is reported for its own failure, not for its sockets
    assert "test_fails_on_its_own:" not in output
    assert "assert 1 == 2" in output
    # without the option, nothing is checked
    _run(pytester).assert_outcomes(passed=2, failed=1)


def test_fixtures_give_expectations_on_the_users_own_sockets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixtures=FIXTURES)
    _run(pytester, "--tcplab-leaks").assert_outcomes(passed=3)


def test_the_plugin_is_registered_by_the_pytest11_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"tcplab": "tcplab.pytest_plugin"}

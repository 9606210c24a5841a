"""The leak check judged after the test's teardown (issue 12): fixtures of every scope,
xfail, ini options, detached fds, pytest-asyncio, anyio and xdist; each through a real
inner pytest run (``pytester`` in a subprocess) on real loopback sockets."""

from __future__ import annotations

import importlib.util
import json
import re
import xml.etree.ElementTree as ET

import pytest

from test_pytest_plugin import _line_of, _plugin_args


def _reports(output: str) -> str:
    """The reports of an inner session without its short summary, which repeats each error's
    message (whole, not cut to the terminal's width, where the ``CI`` variable is set)."""
    return output.split("short test summary")[0]


def _run(pytester: pytest.Pytester, *args: str, ini: str = "") -> pytest.RunResult:
    pytester.makeini("[pytest]\n" + ini)
    return pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", *args)


FUNCTION_FIXTURES = '''
import socket

import pytest

KEEP = []


@pytest.fixture
def forgotten():
    listener = socket.create_server(("127.0.0.1", 0))
    KEEP.append(listener)
    yield listener  # and never closed


@pytest.fixture
def closed_by_yield():
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener
    listener.close()


@pytest.fixture
def closed_by_finalizer(request):
    sock = socket.create_server(("127.0.0.1", 0))
    request.addfinalizer(sock.close)
    return sock


@pytest.fixture
def factory(request):
    def make():
        client = socket.create_connection(LISTENER.getsockname())
        request.addfinalizer(client.close)
        return client
    return make


LISTENER = socket.create_server(("127.0.0.1", 0))  # opened at import: not the tests'


def test_fixture_leaks(forgotten):
    pass


def test_fixtures_close_in_their_teardown(closed_by_yield, closed_by_finalizer, factory):
    factory()
    factory()
'''


def test_a_function_fixtures_leak_is_the_tests_and_its_teardown_counts(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fixtures=FUNCTION_FIXTURES)
    result = _run(pytester, "--tcplab-leaks")
    result.assert_outcomes(passed=2, errors=1)
    output = result.stdout.str()
    assert "ERROR at teardown of test_fixture_leaks" in output
    create = _line_of(FUNCTION_FIXTURES, 'listener = socket.create_server(("127.0.0.1", 0))')
    assert f"opened at test_fixtures.py:{create} in forgotten" in output
    # the accepted ends of the factory's connections sit in LISTENER's backlog, never
    # accepted: no fd, not this process's; the clients were closed by their finalizers
    assert "test_fixtures_close_in_their_teardown" not in output.split("short test summary")[0]


WIDER_FIXTURES = '''
import socket
import threading

import pytest

KEEP = []


@pytest.fixture(scope="module")
def server():
    """A server thread that answers and closes each connection, listening all module long."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while conn.recv(100):
                    pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join()


@pytest.fixture(scope="module")
def pool():
    """Connections kept for the whole module (a pool): the module's, closed at its end."""
    conns = [socket.create_connection(LONG.getsockname()) for _ in range(2)]
    yield conns
    for conn in conns:
        conn.close()


LONG = socket.create_server(("127.0.0.1", 0))


@pytest.fixture(scope="module")
def forgotten_module_listener():
    listener = socket.create_server(("127.0.0.1", 0))
    KEEP.append(listener)
    return listener


def test_first(server, pool, forgotten_module_listener):
    with socket.create_connection(server) as client:
        client.sendall(b"ping")


def test_second(server, pool, forgotten_module_listener):
    with socket.create_connection(server) as client:
        client.sendall(b"pong")
'''


def test_wider_fixtures_sockets_are_theirs_and_checked_when_their_scope_ends(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_wider=WIDER_FIXTURES)
    result = _run(pytester, "--tcplab-leaks")
    # both tests pass; the forgotten module listener shows at the teardown that ended the module
    result.assert_outcomes(passed=2, errors=1)
    output = result.stdout.str()
    assert "ERROR at teardown of test_second" in output
    assert ("module-scoped fixture 'forgotten_module_listener' (set up for "
            "test_wider.py::test_first): 1 TCP socket") in output
    assert "still open after the fixture's teardown" in output
    create = _line_of(WIDER_FIXTURES, "KEEP.append(listener)") - 1
    assert f"opened at test_wider.py:{create} in forgotten_module_listener" in output
    assert "'server'" not in output and "'pool'" not in output
    assert _reports(output).count("TCP socket of process") == 1


XFAIL = '''
import socket

import pytest

KEEP = []


@pytest.mark.xfail(reason="expected to fail")
def test_xpass_leaks():
    KEEP.append(socket.create_server(("127.0.0.1", 0)))


@pytest.mark.xfail(reason="expected to fail", strict=True)
def test_strict_xpass_leaks():
    KEEP.append(socket.create_server(("127.0.0.1", 0)))


@pytest.mark.xfail(reason="expected to fail")
def test_xfail_leaks_and_fails():
    KEEP.append(socket.create_server(("127.0.0.1", 0)))
    assert False
'''


def test_a_leak_in_an_xfail_test_is_reported_and_its_outcome_kept(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_xfail=XFAIL)
    result = _run(pytester, "--tcplab-leaks", "-rA")
    result.assert_outcomes(xpassed=1, failed=1, xfailed=1, errors=2)
    output = result.stdout.str()
    assert "ERROR at teardown of test_xpass_leaks" in output
    assert "ERROR at teardown of test_strict_xpass_leaks" in output
    assert "[XPASS(strict)]" in output
    assert "test_xfail_leaks_and_fails:" not in output  # failed as expected: not judged


CONFIGURED = '''
import socket

import pytest

KEEP = []
LONG_LIVED = socket.create_server(("127.0.0.1", 0))


def test_leaks():
    KEEP.append(socket.create_server(("127.0.0.1", 0)))


def test_keeps_a_connection_to_the_allowed_port():
    KEEP.append(socket.create_connection(LONG_LIVED.getsockname()))


@pytest.mark.tcplab_leaks(allow_ports=[{port}])
def test_marker_allows_a_port():
    KEEP.append(socket.create_server(("127.0.0.1", {port})))


@pytest.mark.tcplab_leaks(check=False)
def test_opted_out():
    KEEP.append(socket.create_server(("127.0.0.1", 0)))
'''


def test_ini_options_enable_the_check_and_the_marker_allows_ports(
        pytester: pytest.Pytester) -> None:
    import socket

    with socket.socket() as probe:  # a port free now, for the marker's allow_ports
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pytester.makepyfile(test_configured=CONFIGURED.replace("{port}", str(port)))
    result = _run(pytester, ini="tcplab_leaks = true\ntcplab_leaks_grace = 0.05\n")
    result.assert_outcomes(passed=4, errors=2)  # the leak, and the connection kept
    output = result.stdout.str()
    assert "tcplab: leak check on every test (grace 0.05 s, threads the test started " \
        "waited for up to 2 s)" in output
    assert "ERROR at teardown of test_leaks" in output
    assert "ERROR at teardown of test_keeps_a_connection_to_the_allowed_port" in output
    result.stdout.fnmatch_lines(["*tcplab: 2 tests (of 3 checked) left TCP sockets open*"])
    # a bad ini value is a usage error, not a silent default
    bad = _run(pytester, ini="tcplab_leaks_grace = soon\n")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "tcplab_leaks_grace = 'soon': seconds expected" in bad.stderr.str()


def test_ini_ignore_ports_allows_a_long_lived_socket(pytester: pytest.Pytester) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as outside:  # a server outside the test run
        port = outside.getsockname()[1]
        pytester.makepyfile(test_kept=f'''
import socket

KEEP = []


def test_keeps_a_connection():
    KEEP.append(socket.create_connection(("127.0.0.1", {port})))
''')
        flagged = _run(pytester, ini="tcplab_leaks = true\n")
        flagged.assert_outcomes(passed=1, errors=1)
        allowed = _run(pytester, ini=f"tcplab_leaks = true\ntcplab_leaks_ignore_ports = {port}\n")
        allowed.assert_outcomes(passed=1)
        assert "no TCP socket left open by 1 checked tests" in allowed.stdout.str()


DETACHED = '''
import socket

import trio

KEEP = []


def test_detaches_an_fd_and_never_closes_it():
    sock = socket.socket()
    KEEP.append(sock.detach())  # the fd lives on, no socket object holds it


async def test_trio_detach():
    with trio.socket.socket() as sock:
        KEEP.append(sock.detach())
'''


def test_a_detached_fd_is_found_with_where_it_was_opened(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_detached=DETACHED)
    result = _run(pytester, "--tcplab-leaks", ini="trio_mode = true\n")
    result.assert_outcomes(passed=2, errors=2)
    output = result.stdout.str()
    assert f"opened at test_detached.py:{_line_of(DETACHED, 'sock = socket.socket()')} in " \
        "test_detaches_an_fd_and_never_closes_it" in output
    assert f"opened at test_detached.py:{_line_of(DETACHED, 'trio.socket.socket()')} in " \
        "test_trio_detach" in output
    assert "(in no kernel table: never connected" in output


THREADS = '''
import socket
import threading
import time

import pytest

KEEP = []


@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def _serve(listener, name, then):
    """Start a thread that accepts one connection, then does ``then(conn)``."""
    accepted = threading.Event()

    def serve():
        conn, _ = listener.accept()
        accepted.set()
        then(conn)

    threading.Thread(target=serve, daemon=True, name=name).start()
    with socket.create_connection(listener.getsockname()):
        assert accepted.wait(5)


def _sleep_then_close(conn):
    time.sleep(1)
    conn.close()


def _keep_and_end(conn):
    KEEP.append(conn)
    time.sleep(0.2)


def _keep_forever(conn):
    KEEP.append(conn)
    while True:
        time.sleep(0.05)


def test_closes_after_a_second(listener):
    _serve(listener, "serve-slow", _sleep_then_close)  # as anyio's test_receive_timeout


@pytest.mark.tcplab_leaks(thread_wait=0)
def test_closes_after_a_second_not_waited_for(listener):
    _serve(listener, "serve-unwaited", _sleep_then_close)


def test_ends_without_closing(listener):
    _serve(listener, "serve-keeps", _keep_and_end)


@pytest.mark.tcplab_leaks(thread_wait=0.5)
def test_never_ends(listener):
    _serve(listener, "serve-forever", _keep_forever)


@pytest.mark.tcplab_leaks(thread_wait=60)
def test_clean_with_a_thread_left_running():
    threading.Thread(target=time.sleep, args=(60,), daemon=True, name="sleeper").start()
    with socket.create_server(("127.0.0.1", 0)) as sock:
        socket.create_connection(sock.getsockname()).close()
'''


def test_threads_the_test_started_may_close_its_sockets_before_the_verdict(
        pytester: pytest.Pytester) -> None:
    import time

    pytester.makepyfile(test_threads=THREADS)
    started = time.monotonic()
    result = _run(pytester, "--tcplab-leaks", "--junitxml=junit.xml")
    took = time.monotonic() - started
    result.assert_outcomes(passed=5, errors=3)
    output = result.stdout.str()
    # a server thread that closes 1 s after the teardown: waited for, no flag
    assert not re.search(r"ERROR at teardown of test_closes_after_a_second\b(?!_)", output)
    # the same with the wait switched off: flagged, and the thread named as not waited for
    assert re.search(r"a thread the test started, serve-unwaited, was still running \(not "
                     r"waited for: tcplab_leaks_thread_wait = 0\)", output)
    # a thread that ends without closing: flagged once it ended, not after the bound
    assert re.search(r"a thread the test started, serve-keeps, ended [0-9.]+ s into the wait; "
                     r"the socket stayed open", output)
    # a daemon thread that never ends: flagged after the bound, and named
    assert ("a thread the test started, serve-forever, was still running after 0.5 s "
            "(tcplab_leaks_thread_wait)") in output
    # a clean test is never waited for, whatever threads it left running (60 s bound)
    assert "test_clean_with_a_thread_left_running" not in output.split("short test summary")[0]
    assert took < 30, took
    # each flagged socket is a record in the teardown report's user_properties (JUnit XML)
    records = {}
    for case in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase"):
        for prop in case.iter("property"):
            assert prop.get("name") == "tcplab_leaks"
            records[case.get("name")] = json.loads(prop.get("value") or "")
    assert set(records) == {"test_closes_after_a_second_not_waited_for",
                            "test_ends_without_closing", "test_never_ends"}
    forever = records["test_never_ends"]
    assert forever["test"] == "test_threads.py::test_never_ends"
    assert (forever["state"], forever["accepted"], forever["thread"]) == (
        "CLOSE_WAIT", True, "serve-forever")
    assert forever["threads"] == [{"name": "serve-forever", "ended_after_s": None}]
    assert forever["thread_wait_s"] == 0.5
    assert forever["listener"]["opened"] == {
        "file": "test_threads.py", "line": _line_of(THREADS, "socket.create_server"),
        "function": "listener"}
    assert forever["local"] == forever["listener"]["address"]
    assert isinstance(forever["inode"], int) and isinstance(forever["fd"], int)
    ended = records["test_ends_without_closing"]["threads"]
    assert ended[0]["name"] == "serve-keeps" and ended[0]["ended_after_s"] < 1.5


COUNT_GC = '''
import gc
import os

CALLS = []
_collect = gc.collect


def _counting(generation=2):
    if generation == 2:  # only the full collections: the young ones cost next to nothing
        CALLS.append(1)
    return _collect(generation)


gc.collect = _counting


def pytest_sessionfinish(session):
    with open(os.path.join(str(session.config.rootpath), "gc.txt"), "w") as f:
        f.write(str(len(CALLS)))
'''

CLEAN_MANY = '''
import socket

import pytest


@pytest.mark.parametrize("n", range(20))
def test_open_and_close(n):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        client.close()
        server.close()
'''


def test_no_garbage_collection_unless_a_first_read_finds_a_socket(
        pytester: pytest.Pytester) -> None:
    pytester.makeconftest(COUNT_GC)
    pytester.makepyfile(test_clean=CLEAN_MANY)
    _run(pytester, "--tcplab-leaks").assert_outcomes(passed=20)
    assert (pytester.path / "gc.txt").read_text() == "0"
    pytester.makepyfile(test_leak='''
import socket
KEEP = []
def test_leak():
    KEEP.append(socket.socket())
''')
    _run(pytester, "--tcplab-leaks").assert_outcomes(passed=21, errors=1)
    assert (pytester.path / "gc.txt").read_text() == "1"


def test_garbage_collection_only_for_sockets_it_can_close(pytester: pytest.Pytester) -> None:
    """A socket only a dead reference cycle holds is closed by a collection and never
    flagged, young or old; a detached fd is flagged without any full collection."""
    pytester.makeconftest(COUNT_GC)
    pytester.makepyfile(test_detached='''
import socket
KEEP = []
def test_detached():
    KEEP.append(socket.socket().detach())
def test_detached_and_freed():
    sock = socket.socket()
    KEEP.append(socket.socket(fileno=sock.detach()).detach())
''')
    _run(pytester, "--tcplab-leaks").assert_outcomes(passed=2, errors=2)
    assert (pytester.path / "gc.txt").read_text() == "0"
    pytester.makepyfile(test_detached='''
import gc
import socket


class Cycle:
    def __init__(self):
        self.me = self
        self.sock = socket.socket()


def test_young_cycle():
    Cycle()


def test_old_cycle():
    cycle = Cycle()
    gc.collect()  # still reachable: it survives into the oldest generation
    del cycle  # now only the cycle holds it: a young collection cannot free it
''')
    _run(pytester, "--tcplab-leaks").assert_outcomes(passed=2)


ASYNCIO = '''
import asyncio

import pytest
import pytest_asyncio

WRITERS = []  # the bug: a registry that keeps the connection of a handler that returned


async def echo(reader, writer):
    while data := await reader.read(100):
        writer.write(data)
    writer.close()


async def forgetful(reader, writer):
    WRITERS.append(writer)
    await reader.read(100)  # end of file ... and return without close(): CLOSE_WAIT


@pytest_asyncio.fixture
async def server():
    srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()
    srv.close()
    await srv.wait_closed()


@pytest_asyncio.fixture
async def leaky_server():
    srv = await asyncio.start_server(forgetful, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()
    srv.close()
    await srv.wait_closed()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_server():
    srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()
    srv.close()
    await srv.wait_closed()


@pytest.mark.asyncio
async def test_closes_the_client_only(server):
    reader, writer = await asyncio.open_connection(*server)
    writer.write(b"ping")
    assert await reader.read(4) == b"ping"
    writer.close()  # the server's handler sees the end of file during the teardown


@pytest.mark.asyncio
async def test_server_forgets_to_close(leaky_server):
    reader, writer = await asyncio.open_connection(*leaky_server)
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.05)


@pytest.mark.asyncio(loop_scope="module")
async def test_same_loop_server_closes_after_the_test(module_server):
    reader, writer = await asyncio.open_connection(*module_server)
    writer.write(b"ping")
    assert await reader.read(4) == b"ping"
    writer.close()  # closes only when the loop runs again: after the test


@pytest.mark.asyncio(loop_scope="module")
async def test_the_module_loop_lives_on(module_server):
    pass
'''


@pytest.mark.skipif(importlib.util.find_spec("pytest_asyncio") is None,
                    reason="pytest-asyncio not installed")
def test_pytest_asyncio_suites_same_loop_servers_and_a_real_leak(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_aio=ASYNCIO)
    result = _run(pytester, "--tcplab-leaks",
                  ini="asyncio_default_fixture_loop_scope = function\n")
    result.assert_outcomes(passed=4, errors=1)
    output = result.stdout.str()
    assert "ERROR at teardown of test_server_forgets_to_close" in output
    assert re.search(r"CLOSE_WAIT\s+<- the peer closed it", output)
    start = _line_of(ASYNCIO, 'srv = await asyncio.start_server(forgetful')
    assert re.search(rf"accepted by asyncio/selector_events.py:\d+ in _accept_connection, on the "
                     rf"listener 127.0.0.1:\d+ opened at test_aio.py:{start} in leaky_server", output)
    assert _reports(output).count("still open after") == 1


ANYIO = '''
import socket

import anyio
import pytest

KEEP = []


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.fixture
def sock_with_finalizer(request):
    sock = socket.socket()
    request.addfinalizer(sock.close)
    return sock


@pytest.mark.anyio
async def test_finalizer_closes(sock_with_finalizer):
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with await anyio.connect_tcp("127.0.0.1", port):
            pass


@pytest.mark.anyio
async def test_leaks_a_stream():
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    KEEP.append(await anyio.connect_tcp("127.0.0.1", port))
    await listener.aclose()
'''


@pytest.mark.skipif(importlib.util.find_spec("anyio") is None, reason="anyio not installed")
def test_anyio_plugin_on_both_backends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_anyio=ANYIO)
    result = _run(pytester, "--tcplab-leaks")
    result.assert_outcomes(passed=4, errors=2)
    output = result.stdout.str()
    connect = _line_of(ANYIO, 'KEEP.append(await anyio.connect_tcp')
    # anyio connects in a child task: the test is where the task that started it waits
    assert _reports(output).count(f"opened at test_anyio.py:{connect} in test_leaks_a_stream, "
                        "in a task it started") == 2


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist not installed")
def test_xdist_workers_report_and_the_controller_counts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a='''
import socket
KEEP = []
def test_leak():
    KEEP.append(socket.create_server(("127.0.0.1", 0)))
def test_clean():
    socket.create_server(("127.0.0.1", 0)).close()
''', test_b='''
def test_nothing():
    pass
''')
    result = _run(pytester, "-n", "2", "--tcplab-leaks", "--junitxml=junit.xml")
    result.assert_outcomes(passed=3, errors=1)
    output = result.stdout.str()
    assert "ERROR at teardown of test_leak" in output
    assert re.search(r"opened at test_a.py:4 in test_leak", output)
    result.stdout.fnmatch_lines(["*tcplab: 1 test (of 3 checked) left TCP sockets open*"])
    # the record travels from the worker with the report
    (prop,) = ET.parse(pytester.path / "junit.xml").getroot().iter("property")
    record = json.loads(prop.get("value") or "")
    assert (prop.get("name"), record["test"], record["state"], record["opened"]) == (
        "tcplab_leaks", "test_a.py::test_leak", "LISTEN",
        {"file": "test_a.py", "line": 4, "function": "test_leak"})


def test_the_readmes_leak_example_runs_as_pasted(pytester: pytest.Pytester) -> None:
    from test_pytest_plugin import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### 2. Catch it in your tests"):]
    ini = re.search(r"```ini\n(.*?)```", section, re.S)
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert ini is not None and example is not None
    pytester.makefile(".ini", pytest=ini.group(1))
    pytester.makepyfile(test_server=example.group(1))
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*test_client_disconnects: 1 TCP socket of process * still open after the test's teardown",
        "*CLOSE_WAIT  <- the peer closed it; this process never called close()",
        "*accepted at test_server.py:* in test_client_disconnects, on the listener * opened at "
        "test_server.py:* in test_client_disconnects",
    ])

"""The plugin's fixtures (``tcplab_lab``, ``tcplab_adopt``) and ``tcplab.expect`` under each
async pytest plugin a user may have: pytest-asyncio (strict mode with markers, auto mode
without), anyio's plugin (both backends) and pytest-trio (marker, and trio mode), in inner
pytest sessions run as a user runs them (issue 12, item 3)."""

from __future__ import annotations

import importlib.metadata

import pytest

#: The same two tests for each framework, written with that framework's own sockets:
#: ``{marker}`` is the line that hands the test to a plugin (empty in auto/trio mode).
ASYNCIO_TESTS = '''
import asyncio

import pytest

from tcplab import TcpState
from tcplab.expect import eventually, gone, holds, path_seen, reaches, within
from tcplab.measure import leaves, state_of


{marker}
async def test_adopted_asyncio_streams(tcplab_adopt):
    accepted = asyncio.Queue()
    server = await asyncio.start_server(lambda r, w: accepted.put_nowait(w), "127.0.0.1", 0)
    _, client = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    served = await accepted.get()
    c, s = tcplab_adopt(client, "client"), tcplab_adopt(served.transport, "server")
    client.close()
    await reaches(s, TcpState.CLOSE_WAIT)
    await holds(s, TcpState.CLOSE_WAIT, for_=0.05)
    served.close()
    assert state_of(await leaves(c, TcpState.ESTABLISHED, TcpState.FIN_WAIT1,
                                 TcpState.FIN_WAIT2)) == "TIME_WAIT"
    await gone(s)
    path_seen(s, TcpState.CLOSE_WAIT, None)
    assert await within(lambda: s.observe() is None, timeout=1) is True
    server.close()
    await server.wait_closed()


{marker}
async def test_the_lab_of_the_test(tcplab_lab):
    conn = await tcplab_lab.connect()
    await conn.client.send(b"hello")
    assert await conn.server.recv(5) == b"hello"
    await conn.server.close()
    await reaches(conn.client, TcpState.CLOSE_WAIT)
    assert await eventually(lambda: conn.server.observe(), what="the server's end") is not None
'''

TRIO_TESTS = '''
import pytest
import trio

from tcplab import TcpState
from tcplab.expect import gone, reaches


{marker}
async def test_adopted_trio_streams(tcplab_adopt):
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    client = await trio.open_tcp_stream("127.0.0.1", listener.socket.getsockname()[1])
    served = await listener.accept()
    c, s = tcplab_adopt(client, "client"), tcplab_adopt(served, "server")
    await client.aclose()
    await reaches(s, TcpState.CLOSE_WAIT)
    await served.aclose()
    await reaches(c, TcpState.TIME_WAIT)
    await gone(s)
    await listener.aclose()


{marker}
async def test_the_lab_of_the_test(tcplab_lab):
    conn = await tcplab_lab.connect()
    await conn.server.close()
    await reaches(conn.client, TcpState.CLOSE_WAIT)
'''

ANYIO_TESTS = '''
import anyio
import pytest

from tcplab import TcpState
from tcplab.expect import gone, reaches


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


{marker}
async def test_adopted_anyio_streams(tcplab_adopt):
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    client = await anyio.connect_tcp("127.0.0.1", port)
    served = await listener.listeners[0].accept()
    c, s = tcplab_adopt(client, "client"), tcplab_adopt(served, "server")
    await client.aclose()
    await reaches(s, TcpState.CLOSE_WAIT)
    await served.aclose()
    await reaches(c, TcpState.TIME_WAIT)
    await gone(s)
    await listener.aclose()


{marker}
async def test_the_lab_of_the_test(tcplab_lab):
    conn = await tcplab_lab.connect()
    await conn.server.close()
    await reaches(conn.client, TcpState.CLOSE_WAIT)
'''

CASES = {
    "pytest-asyncio strict": (ASYNCIO_TESTS, "@pytest.mark.asyncio", "", 2),
    "pytest-asyncio auto": (ASYNCIO_TESTS, "", "asyncio_mode = auto", 2),
    "anyio plugin": (ANYIO_TESTS, "@pytest.mark.anyio", "", 4),
    "pytest-trio marker": (TRIO_TESTS, "@pytest.mark.trio", "", 2),
    "pytest-trio mode": (TRIO_TESTS, "", "trio_mode = true", 2),
}


def _plugin_args() -> list[str]:
    names = {ep.name for ep in importlib.metadata.entry_points(group="pytest11")}
    return [] if "tcplab" in names else ["-p", "tcplab.pytest_plugin"]


@pytest.mark.parametrize("case", list(CASES))
def test_fixtures_and_expectations_under_each_plugin(pytester: pytest.Pytester, case: str) -> None:
    """Also under ``--tcplab-leaks``: the adopted sockets are closed by the test itself."""
    code, marker, ini, passed = CASES[case]
    pytester.makepyfile(test_frameworks=code.replace("{marker}", marker))
    pytester.makeini(f"[pytest]\nasyncio_default_fixture_loop_scope = function\n{ini}\n")
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=passed)
    checked = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider",
                                            "--tcplab-leaks", "-k", "adopted")
    checked.assert_outcomes(passed=passed // 2, deselected=passed // 2)

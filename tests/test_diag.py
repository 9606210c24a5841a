"""The sock_diag client against the kernel: in-kernel port filter, exact lookups, parsing."""

from __future__ import annotations

import dataclasses
import pickle
import socket
from collections import Counter

import pytest

from tcplab import Lab, TcpState, TimerKind
from tcplab.expect import gone, reaches
from tcplab.kernel import diag
from tcplab.kernel.diag import SockDiag, port_bytecode
from tcplab.kernel.model import Address, FourTuple, Owner, SocketRecord

FAMILIES = [pytest.param(socket.AF_INET, id="ipv4"), pytest.param(socket.AF_INET6, id="ipv6")]


def tuples(records: list[SocketRecord]) -> set[FourTuple]:
    return {r.four_tuple for r in records}


@pytest.mark.parametrize("family", FAMILIES)
async def test_port_filter_returns_exactly_the_sockets_with_that_port(family: int) -> None:
    """The bytecode passes the kernel's audit (else EINVAL) and matches either end's port:
    the listener and its accepted ends by local port, the clients by remote port."""
    async with Lab(family=family) as lab:
        listener = await lab.listen()
        other = await lab.listen()
        mine = [await lab.connect(listener) for _ in range(3)]
        theirs = [await lab.connect(other) for _ in range(2)]
        await mine[0].client.close()  # one in FIN_WAIT2 / CLOSE_WAIT: any state matches
        await reaches(mine[0].server, TcpState.CLOSE_WAIT)

        expected = {listener.four_tuple} | {e.four_tuple for c in mine for e in c.ends}
        ours = expected | {other.four_tuple} | {e.four_tuple for c in theirs for e in c.ends}
        port = listener.address.port
        with SockDiag() as d:
            filtered = d.dump(port=port)
            everything = d.dump()
            only_v4 = d.dump(port=port, families=(socket.AF_INET,))
            closing = d.dump(port=port, states=[TcpState.CLOSE_WAIT])
    # The host's other sockets may share the port number (another family, or a TIME_WAIT
    # whose peer port it was): exactness is judged on this lab's sockets.
    assert tuples(filtered) & ours == expected
    assert len([r for r in filtered if r.four_tuple in ours]) == len(expected)  # each once
    assert all(port in (r.four_tuple.local.port, r.four_tuple.remote.port) for r in filtered)
    # The kernel skipped none of ours that a dump of everything shows.
    assert {r.four_tuple for r in everything if port in (r.four_tuple.local.port,
                                                         r.four_tuple.remote.port)} & ours == expected
    assert tuples(only_v4) & ours == (expected if family == socket.AF_INET else set())
    assert all(r.family == socket.AF_INET for r in only_v4)
    assert tuples(closing) & ours == {mine[0].server.four_tuple}
    assert all(r.state is TcpState.CLOSE_WAIT for r in closing)


def test_port_bytecode_layout() -> None:
    """Five 4-byte ops: S_EQ, port, JMP to the end, D_EQ, port (the way ``ss`` writes an OR)."""
    code = port_bytecode(0xABCD)
    assert len(code) == 20
    ops = [code[i : i + 4] for i in range(0, 20, 4)]
    assert ops[0][0] == diag.INET_DIAG_BC_S_EQ and ops[3][0] == diag.INET_DIAG_BC_D_EQ
    assert ops[2][0] == diag.INET_DIAG_BC_JMP
    assert int.from_bytes(ops[1][2:], "little") == int.from_bytes(ops[4][2:], "little") == 0xABCD


@pytest.mark.parametrize("family", FAMILIES)
async def test_lookup_of_a_closed_four_tuple_is_none_though_a_listener_shares_its_port(
    family: int,
) -> None:
    """The kernel's exact lookup falls back to a listener on the local port; ``lookup`` must
    not return that listener as if it were the connection."""
    async with Lab(family=family) as lab:
        listener = await lab.listen()
        conn = await lab.connect(listener)
        server = conn.server
        assert server.four_tuple.local == listener.address
        await conn.client.abort()  # RST: the server end is dropped from the tables
        await gone(conn.client)
        await server.close()
        await gone(server)
        with SockDiag() as d:
            assert d.lookup(server.four_tuple) is None
            assert d.lookup(conn.client.four_tuple) is None
            never = FourTuple(listener.address, Address(listener.address.host, 9))
            assert d.lookup(never) is None
            found = d.lookup(listener.four_tuple)
        assert found is not None and found.state is TcpState.LISTEN
        assert found.four_tuple == listener.four_tuple


@pytest.mark.parametrize("family", FAMILIES)
async def test_lazy_records_equal_the_plain_parse(family: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dump's records decode their four-tuple, timer, queues and uid on first use
    (``DiagRecord``): for the same kernel bytes they must be the records the ordinary
    constructors build, on every kind of socket, equal to them both ways, hashed alike,
    and shown, copied and pickled alike."""
    assert diag.FAST_CONSTRUCTION
    async with Lab(family=family) as lab:
        listener = await lab.listen()
        established = await lab.connect(listener)
        await established.client.send(b"x" * 100)  # Recv-Q 100 at the server
        await reaches(established.server, TcpState.ESTABLISHED)
        closing = await lab.connect(listener)
        await closing.client.close()
        await reaches(closing.server, TcpState.CLOSE_WAIT)
        await closing.server.close()
        await reaches(closing.client, TcpState.TIME_WAIT)
        with SockDiag() as d:
            records = d.dump(port=listener.address.port)
    assert {r.state for r in records} >= {TcpState.LISTEN, TcpState.ESTABLISHED, TcpState.TIME_WAIT}
    assert all(type(r) is diag.DiagRecord for r in records)
    # Nothing but the state and the inode was decoded while the dump was read.
    assert all(set(vars(r)) == {"state", "inode", "_raw"} for r in records)
    raws = [vars(r)["_raw"] for r in records]
    lazy = [diag.RecordParser.parse(raw) for raw in raws]
    monkeypatch.setattr(diag, "FAST_CONSTRUCTION", False)
    plain = [diag.RecordParser.parse(raw) for raw in raws]
    for raw, one, other in zip(raws, lazy, plain, strict=True):
        assert type(other) is SocketRecord
        assert diag.RecordParser.state_and_inode(raw) == (one.state, one.inode)
        assert one == other and other == one
        assert hash(one) == hash(other) and hash(one.four_tuple) == hash(other.four_tuple)
        assert one.to_json() == other.to_json() and one.describe() == other.describe()
        assert dataclasses.replace(one) == one and dataclasses.replace(one, owners=()) == other
        assert pickle.loads(pickle.dumps(one)) == other
        assert {one, other} == {one}
    by_tuple = {r.four_tuple: r for r in records}
    assert by_tuple[established.server.four_tuple].recv_q == 100
    tw = by_tuple[closing.client.four_tuple]
    assert tw.timer.kind is TimerKind.TIMEWAIT and 50 < tw.timer.remaining <= 60
    assert by_tuple[listener.four_tuple] != tw


def test_a_record_differs_from_one_with_another_field() -> None:
    """Equality compares every compared field (not ``owners``), whichever side is lazy."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with SockDiag() as d:
            # the listener's own record: the port filter also matches other sockets of the
            # host that have this port at their other end
            (record,) = [r for r in d.dump(port=listener.getsockname()[1])
                         if r.four_tuple.local.port == listener.getsockname()[1]
                         and r.state is TcpState.LISTEN]
    finally:
        listener.close()
    plain = SocketRecord(record.state, record.four_tuple, record.inode, record.uid,
                         record.timer, record.recv_q, record.send_q)
    assert record == plain
    for changes in ({"inode": record.inode + 1}, {"recv_q": record.recv_q + 1},
                    {"state": TcpState.CLOSED}, {"fd_only": True}):
        other = dataclasses.replace(plain, **changes)
        assert record != other and other != record
    assert record == dataclasses.replace(plain, owners=(Owner(1, 2),))
    assert record.__eq__(object()) is NotImplemented


def test_one_parser_reads_every_message() -> None:
    """The module keeps one reading of ``inet_diag_msg``: no second parser beside
    ``RecordParser`` (issue 10 found three that had to agree)."""
    assert not hasattr(diag, "_parse") and not hasattr(diag, "_parse_state_inode")
    assert not hasattr(diag.SockDiag, "dump_state_inodes")
    assert not hasattr(diag, "_RecordCache")
    # the reply loop reads the state and inode at the offsets the parser reads them
    assert diag._READ.format.endswith(diag._STATE_INODE.format.lstrip("="))


@pytest.mark.parametrize("family", FAMILIES)
async def test_the_census_counts_what_the_dump_lists(family: int) -> None:
    """``census`` (state and inode only) and ``dump`` (records) make the same request and
    read it through the same parser: the same sockets, each with the same state and inode."""
    async with Lab(family=family) as lab:
        listener = await lab.listen()
        conns = [await lab.connect(listener) for _ in range(3)]
        await conns[0].client.close()
        await reaches(conns[0].server, TcpState.CLOSE_WAIT)
        await reaches(conns[0].client, TcpState.FIN_WAIT2)  # its FIN acked: nothing in flux
        port = listener.address.port
        with SockDiag() as d:
            for states in (None, [TcpState.CLOSE_WAIT], [TcpState.CLOSED]):
                records = d.dump(port=port, states=states)
                assert Counter(d.census(port=port, states=states)) == Counter(
                    (r.state, r.inode) for r in records)
                tally = d.tally(port=port, states=states)
                assert tally.unowned == Counter(r.state for r in records if not r.inode)
                assert Counter((state, inode) for state, inodes in tally.owned.items()
                               for inode in inodes) == Counter((r.state, r.inode)
                                                               for r in records if r.inode)
        assert len(records) == 0


@pytest.mark.parametrize("family", FAMILIES)
async def test_lookup_and_dump_agree(family: int) -> None:
    async with Lab(family=family) as lab:
        conn = await lab.connect()
        with SockDiag() as d:
            for end in conn.ends:
                record = d.lookup(end.four_tuple)
                assert record is not None and record.four_tuple == end.four_tuple
                assert record.family == family
                assert record in d.dump(port=end.four_tuple.local.port)


def test_a_dump_leaves_the_collector_as_it_found_it() -> None:
    """The cyclic GC is paused while a dump's records are built, and only then."""
    import gc

    with SockDiag() as d:
        assert gc.isenabled()
        d.dump()
        assert gc.isenabled()
        gc.disable()
        try:
            d.dump()
            assert not gc.isenabled()
        finally:
            gc.enable()

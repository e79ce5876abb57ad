"""Peer links (coord.aio.peer): one link per pair, framing, garbage, bounds, reconnect, pokes."""
from __future__ import annotations

import asyncio
import os
import socket
import struct
import zlib

import pytest

from coord.aio import epochs
from coord.aio.peer import (DATA, HELLO, FrameError, FrameReader, PeerAddr, PeerTransport, encode_frame,
                            encode_hello, membership_digest)
from tests.support.real_zk import free_port


def test_frame_reader_roundtrip_and_split():
    r = FrameReader(1 << 20)
    data = encode_frame(DATA, b"hello") + encode_frame(DATA, b"") + encode_frame(DATA, b"x" * 1000)
    out = []
    for i in range(len(data)):
        out += r.feed(data[i:i + 1])
    assert out == [(DATA, b"hello"), (DATA, b""), (DATA, b"x" * 1000)]
    assert not r.buf


@pytest.mark.parametrize("bad", [
    b"\x02" + encode_frame(DATA, b"abc")[1:],                          # version
    encode_frame(DATA, b"abc")[:1] + b"\x09" + encode_frame(DATA, b"abc")[2:],  # kind
    encode_frame(DATA, b"abc")[:-1] + b"X",                            # checksum
    struct.pack(">BBHII", 1, DATA, 0, 1 << 30, 0),                      # size bound
])
def test_frame_reader_rejects(bad):
    with pytest.raises(FrameError):
        FrameReader(1 << 20).feed(bad)


def test_frame_reader_random_garbage_never_crashes():
    rnd = __import__("random").Random(7)
    for _ in range(2000):
        r = FrameReader(4096)
        blob = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 64)))
        try:
            r.feed(blob)
        except FrameError:
            pass


def test_epoch_store_atomic(tmp_path):
    st = epochs.EpochStore(tmp_path / "v2")
    assert st.read() == (0, 0)
    st.write(3, 2)
    assert st.read() == (3, 2)
    assert (tmp_path / "v2" / "acceptedEpoch").read_text() == "3\n"
    (tmp_path / "v2" / "coord-epochs.tmp").write_bytes(b"half")   # crash before rename
    assert st.read() == (3, 2)
    assert not (tmp_path / "v2" / "coord-epochs.tmp").exists()
    (tmp_path / "v2" / "coord-epochs").write_bytes(epochs.encode(5, 4)[:-6] + b"zzzzz\n")
    with pytest.raises(epochs.EpochFileError):
        st.read()
    with pytest.raises(epochs.EpochFileError):
        epochs.decode(epochs.encode(1, 2))  # current > accepted


class Node:
    def __init__(self, sid, addrs, **kw):
        self.events = []
        self.msgs = asyncio.Queue()
        self.t = PeerTransport(sid, addrs, digest=membership_digest(addrs, []),
                               on_connected=lambda s: self.events.append(("up", s)),
                               on_disconnected=lambda s: self.events.append(("down", s)),
                               on_message=lambda s, d: self.msgs.put_nowait((s, d)), **kw)


def _addrs(n):
    return {i: PeerAddr(i, "127.0.0.1", free_port(), free_port()) for i in range(1, n + 1)}


async def _until(cond, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_mesh_forms_one_link_per_pair_and_carries_messages():
    async def main():
        addrs = _addrs(3)
        nodes = {i: Node(i, addrs) for i in addrs}
        for n in nodes.values():
            await n.t.start()
        await _until(lambda: all(n.t.connected(j) for i, n in nodes.items() for j in addrs if j != i))
        for i, n in nodes.items():
            for j in addrs:
                if j != i:
                    assert n.t.send(j, f"{i}->{j}".encode())
        got = {i: set() for i in nodes}
        for i, n in nodes.items():
            for _ in range(2):
                s, d = await asyncio.wait_for(n.msgs.get(), 5)
                got[i].add((s, d))
        assert got[1] == {(2, b"2->1"), (3, b"3->1")}
        # ordering and a large message
        big = os.urandom(3 << 20)
        for k in range(100):
            nodes[1].t.send(3, k.to_bytes(4, "big"))
        nodes[1].t.send(3, big)
        for k in range(100):
            assert (await asyncio.wait_for(nodes[3].msgs.get(), 5)) == (1, k.to_bytes(4, "big"))
        assert (await asyncio.wait_for(nodes[3].msgs.get(), 5)) == (1, big)
        for i, n in nodes.items():
            assert [e for e in n.events if e[0] == "up"] == [("up", j) for j in sorted(addrs) if j != i] or \
                sorted(n.events) == sorted(("up", j) for j in addrs if j != i)
        for n in nodes.values():
            await n.t.stop()
    run(main())


def test_garbage_disconnects_only_that_connection_and_restart_reconnects():
    async def main():
        addrs = _addrs(2)
        a, b = Node(1, addrs), Node(2, addrs)
        await a.t.start()
        await b.t.start()
        await _until(lambda: a.t.connected(2) and b.t.connected(1))
        # hostile connections to both ports of sid 1
        for port in (addrs[1].quorum_port, addrs[1].election_port):
            for payload in (b"GET / HTTP/1.0\r\n\r\n", os.urandom(4096),
                            encode_hello(99, a.t.digest), encode_hello(2, 12345),
                            struct.pack(">BBHII", 1, DATA, 0, 1 << 31, 0), encode_frame(DATA, b"x")):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(payload)
                s.settimeout(5)
                await asyncio.get_running_loop().run_in_executor(None, s.recv, 10)
                s.close()
        assert a.t.connected(2) and b.t.connected(1)
        assert a.t.garbage_disconnects >= 8
        b.t.send(1, b"still fine")
        assert (await asyncio.wait_for(a.msgs.get(), 5)) == (2, b"still fine")
        # sid 2 (the dialler) restarts: a new transport on the same ports
        await b.t.stop()
        await _until(lambda: ("down", 2) in a.events)
        b2 = Node(2, addrs)
        await b2.t.start()
        await _until(lambda: a.t.connected(2) and b2.t.connected(1))
        # sid 1 (the lower) restarts: sid 2 re-dials; the poke makes it quick
        await a.t.stop()
        await _until(lambda: ("down", 1) in b2.events)
        a2 = Node(1, addrs)
        t0 = asyncio.get_running_loop().time()
        await a2.t.start()
        await _until(lambda: a2.t.connected(2) and b2.t.connected(1))
        assert asyncio.get_running_loop().time() - t0 < 1.0
        a2.t.send(2, b"back")
        assert (await asyncio.wait_for(b2.msgs.get(), 5)) == (1, b"back")
        await a2.t.stop()
        await b2.t.stop()
    run(main())


def test_blackhole_peer_times_out_and_silent_link_is_closed():
    async def main():
        addrs = _addrs(2)
        # sid 1's quorum port is a black hole (accepts, never answers): sid 2 never establishes
        hole = socket.socket()
        hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hole.bind(("127.0.0.1", addrs[1].quorum_port))
        hole.listen(16)
        b = Node(2, addrs, handshake_timeout_ms=200)
        await b.t.start()
        await asyncio.sleep(0.6)
        assert not b.t.connected(1) and b.events == []
        assert not b.t.send(1, b"lost")
        hole.close()
        await b.t.stop()
        # an established link that goes silent is closed after idle_timeout_ms
        a = Node(1, addrs, idle_timeout_ms=300, ping_interval_ms=50)
        b = Node(2, addrs, idle_timeout_ms=300, ping_interval_ms=50)
        await a.t.start()
        await b.t.start()
        await _until(lambda: a.t.connected(2) and b.t.connected(1))
        b.t.housekeeper.cancel()     # b stops pinging: a must give up on it
        await _until(lambda: ("down", 2) in a.events, 3)
        await a.t.stop()
        await b.t.stop()
    run(main())


def test_send_queue_bound_cuts_a_peer_that_does_not_read():
    async def main():
        addrs = _addrs(2)
        a = Node(1, addrs, max_queue_bytes=1 << 20)
        b = Node(2, addrs, max_queue_bytes=1 << 20)
        await a.t.start()
        await b.t.start()
        await _until(lambda: a.t.connected(2) and b.t.connected(1))
        b.t.links[1].transport.pause_reading()
        chunk = b"y" * (256 << 10)
        for _ in range(200):
            if not a.t.send(2, chunk):
                break
            await asyncio.sleep(0)
        await _until(lambda: a.t.overflow_disconnects >= 1, 5)
        await a.t.stop()
        await b.t.stop()
    run(main())


def test_hello_frame_layout():
    f = encode_hello(3, 0xABCD)
    v, kind, _, length, crc = struct.unpack(">BBHII", f[:12])
    assert (v, kind, length) == (1, HELLO, 13) and crc == zlib.crc32(f[12:])


def test_quorum_listen_on_all_ips():
    """quorumListenOnAllIPs=true binds the peer ports on every address, so a peer that knows this
    server by another address of the machine (here 127.0.0.3) still reaches it; without it the
    ports are bound to the server line's address only and that peer cannot connect."""
    from coord.aio import zoocfg
    cfg = zoocfg.parse("tickTime=2000\ndataDir=/tmp/x\nquorumListenOnAllIPs=true\n")
    assert cfg.quorum_listen_on_all_ips and not cfg.warnings
    assert not zoocfg.parse("tickTime=2000\ndataDir=/tmp/x\n").quorum_listen_on_all_ips

    async def main(all_ips: bool) -> bool:
        addrs = _addrs(2)
        seen_by_2 = dict(addrs)
        seen_by_2[1] = PeerAddr(1, "127.0.0.3", addrs[1].quorum_port, addrs[1].election_port)
        a = Node(1, addrs, listen_host="" if all_ips else None)
        b = Node(2, seen_by_2)
        await a.t.start()
        await b.t.start()
        try:
            await _until(lambda: a.t.connected(2) and b.t.connected(1), timeout=3.0)
            return True
        except AssertionError:
            return False
        finally:
            await a.t.stop()
            await b.t.stop()
    assert run(main(True))
    assert not run(main(False))

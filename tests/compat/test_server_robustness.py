"""Hostile bytes on the client port: coord answers with a protocol error or closes that connection,
never crashes, never disturbs other clients; unknown opcodes get UNIMPLEMENTED; maxClientCnxns holds.

Where real ZooKeeper is a sane reference (malformed bodies for every opcode, unknown opcodes, the
connection limit) the same bytes go to both servers and the answers are compared.
"""
from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time

import pytest
from kazoo.client import KazooClient

from coord.jute import records as R
from coord.jute.protocol import Err, OpCode
from tests.compat.conftest import start_pair
from tests.compat.rawclient import ConnectionClosed, RawClient
from tests.support.coord_server import CoordProcess
from tests.support.names import fresh
from tests.support.real_zk import four_letter

pytestmark = pytest.mark.realzk

ERR_CODES = {int(e) for e in Err}
# Every client opcode ZooKeeper 3.8 knows except createSession (-10): ZooKeeper accepts that from a
# connected client and answers it with a second ConnectResponse; coord answers UNIMPLEMENTED
# (test_client_create_session_is_unimplemented).
OPS = sorted(int(o) for o in OpCode if int(o) not in (0, -1, -10))
UNKNOWN_OPS = [10, 23, 24, 99, 108, 1000, -3, -12, 0x7FFFFFFF, -0x80000000]
_rng = random.Random(20240611)
BODIES = {
    "empty": b"",
    "short": b"\x00\x00\x00",
    "huge-string": b"\x7f\xff\xff\xff" + b"abc",
    "negative-lengths": b"\xff\xff\xff\xff" * 6,
    "random": bytes(_rng.randrange(256) for _ in range(40)),
    "root+watch+junk": b"\x00\x00\x00\x01/\x01" + b"\xfe" * 9,
}
XIDS = {11: -2, 100: -4, 101: -8, 105: -8}


def _probe(host, port, op, body):
    """One fresh session; send one request; what comes back: a reply's (xid, err), or closed."""
    c = RawClient(host, port, sock_timeout=5.0).start()
    xid = XIDS.get(op, 7)
    try:
        c.submit(op, body, xid)
        r = c._read_reply()
        assert r.err in ERR_CODES, f"op {op}: unknown error code {r.err}"
        out = ("reply", r.xid, r.err)
    except ConnectionClosed:
        out = ("closed",)
    except socket.timeout:
        out = ("no answer",)
    finally:
        c.close_socket()
    return out


def test_garbage_bodies_for_every_opcode_match_zookeeper(pair):
    results = {}
    for name, host, port in pair.targets:
        results[name] = {(op, b): _probe(host, port, op, body) for op in OPS for b, body in BODIES.items()}
    diffs = [f"op {op} body {b}: zk {results['zk'][(op, b)]} coord {results['coord'][(op, b)]}"
             for (op, b) in results["zk"] if results["zk"][(op, b)] != results["coord"][(op, b)]]
    assert not diffs, "\n".join(diffs)
    for name, host, port in pair.targets:
        assert four_letter(host, port, "ruok") == "imok"


def test_unknown_opcodes_are_unimplemented(pair):
    for name, host, port in pair.targets:
        for op in UNKNOWN_OPS:
            got = _probe(host, port, op, b"\x00\x00\x00\x01/")
            assert got == ("reply", 7, int(Err.UNIMPLEMENTED)), (name, op, got)
    # ZooKeeper then closes the connection (UnimplementedRequestProcessor.sendCloseSession); the
    # issue asks coord for an error reply and never a dropped connection, so coord keeps serving it.
    kept = {}
    for name, host, port in pair.targets:
        c = RawClient(host, port).start()
        assert c.call(23, b"").err == int(Err.UNIMPLEMENTED)
        try:
            kept[name] = c.exists("/").err == 0
        except ConnectionClosed:
            kept[name] = False
        c.stop()
    assert kept == {"zk": False, "coord": True}


def test_client_create_session_is_unimplemented(coord_shared):
    host, port = coord_shared.connect_string.split(":")
    got = _probe(host, int(port), -10, struct.pack(">i", 30000))
    assert got == ("reply", 7, int(Err.UNIMPLEMENTED))


def test_client_delete_container_is_refused(pair):
    """deleteContainer (20) is the server's own cleanup op. ZooKeeper takes the path from the whole
    packet buffer, header included, so a client's request always fails BADARGUMENTS; coord refuses
    it the same way instead of letting any client delete empty containers without an ACL check."""
    dc = fresh("/dc")   # the module's servers: a rerun must not meet this run's containers
    for name, host, port in pair.targets:
        c = RawClient(host, port).start()
        assert c.create(f"{dc}-{name}", b"", flags=4, op=OpCode.createContainer).err == 0
        assert c.call(20, f"{dc}-{name}".encode()).err == int(Err.BADARGUMENTS), name
        assert c.exists(f"{dc}-{name}").err == 0
        c.stop()


# -- frame-level hostility against coord, with a bystander ---------------------------------------
class Bystander:
    """A kazoo client doing real work (and holding a watch) the whole time."""

    def __init__(self, hosts):
        self.zk = KazooClient(hosts=hosts, timeout=10)
        self.zk.start(timeout=15)
        self.states = []
        self.zk.add_listener(self.states.append)
        self.sid = self.zk.client_id[0]
        self.zk.ensure_path("/bystander")
        self.events = []
        self.zk.exists("/bystander/flag", watch=self.events.append)
        self.n = 0

    def work(self):
        self.n += 1
        p = self.zk.create("/bystander/n", str(self.n).encode(), sequence=True, ephemeral=True)
        data, _ = self.zk.get(p)
        assert data == str(self.n).encode()

    def check(self):
        self.work()
        assert self.zk.client_id[0] == self.sid and not self.states, self.states


def _hostile_connection(host, port, payload: bytes, wait=1.0) -> bytes:
    """Send raw bytes; return what the server sent back before closing (or before `wait`)."""
    s = socket.create_connection((host, port), timeout=5)
    got = bytearray()
    try:
        s.sendall(payload)
        s.settimeout(wait)
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return bytes(got)


def _frames(buf: bytes) -> list[bytes]:
    out = []
    p = 0
    while p + 4 <= len(buf):
        (n,) = struct.unpack_from(">i", buf, p)
        assert 0 <= n <= len(buf) - p - 4, f"server sent a malformed frame: length {n}"
        out.append(buf[p + 4:p + 4 + n])
        p += 4 + n
    assert p == len(buf), "server sent a partial frame"
    return out


def _connect_frame(timeout=10000) -> bytes:
    body = R.ConnectRequest(0, 0, timeout, 0, bytes(16)).encode() + b"\x00"
    return struct.pack(">i", len(body)) + body


@pytest.fixture
def hostile_target(tmp_path):
    srv = CoordProcess(tmp_path / "coord", extra_cfg={"jute.maxbuffer": "65536"}).start()
    host, port = srv.connect_string.split(":")
    by = Bystander(srv.connect_string)
    yield srv, host, int(port), by
    by.zk.stop()
    by.zk.close()
    srv.stop()


def test_hostile_frames_only_close_their_connection(hostile_target):
    srv, host, port, by = hostile_target
    rng = random.Random(int(os.environ.get("COMPAT_FUZZ_SEED", "7")))
    cases = [
        ("random bytes", lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))),
        ("negative length", lambda: struct.pack(">i", -rng.randrange(1, 1 << 31))),
        ("length 0x7fffffff", lambda: struct.pack(">i", 0x7FFFFFFF) + b"x" * 100),
        ("over jute.maxbuffer", lambda: struct.pack(">i", 65536 + 2048) + b"\0" * 70000),
        ("truncated ConnectRequest", lambda: _connect_frame()[:rng.randrange(1, 40)]),
        ("ConnectRequest, short frame", lambda: struct.pack(">i", 10) + b"\0" * 10),
        ("empty frame", lambda: struct.pack(">i", 0)),
        ("zero frames", lambda: b"\0" * rng.randrange(4, 64)),
        ("connect then garbage", lambda: _connect_frame() + bytes(rng.randrange(256) for _ in range(200))),
        ("connect then tiny frames", lambda: _connect_frame() + b"".join(
            struct.pack(">i", k) + b"\x01" * k for k in range(0, 8))),
        ("connect then request header with huge length string",
         lambda: _connect_frame() + struct.pack(">iiii", 12, 5, 4, 0x7FFFFFF0)),
        ("four letters then garbage", lambda: b"ruok" + bytes(rng.randrange(256) for _ in range(50))),
        ("half a four-letter word", lambda: b"ru"),
        ("lots of pings without connect", lambda: struct.pack(">iii", 8, -2, 11) * 50),
    ]
    for round_ in range(int(os.environ.get("COMPAT_FUZZ_ROUNDS", "4"))):
        for name, make in cases:
            data = make()
            got = _hostile_connection(host, port, data, wait=0.5)
            if got and not data.startswith(b"ruok"):
                frames = _frames(got)
                # the first answer is a ConnectResponse (36/37 bytes), the rest are reply headers
                for f in frames[1:]:
                    xid, zxid, err = struct.unpack_from(">iqi", f, 0)
                    assert err in ERR_CODES, (name, err)
            assert srv.proc.poll() is None, f"coord died on {name!r}: {srv.log_text()[-3000:]}"
        by.check()
    assert four_letter(host, port, "ruok") == "imok"
    log = srv.log_text()
    assert "jute.maxbuffer" in log
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]


def test_slowloris_and_many_connections_do_not_block_others(hostile_target):
    srv, host, port, by = hostile_target
    idle = []
    for _ in range(50):
        s = socket.create_connection((host, port))
        s.sendall(struct.pack(">i", 1000) + b"\0" * 10)   # a frame that never completes
        idle.append(s)
    try:
        t0 = time.monotonic()
        for _ in range(20):
            by.work()
        assert time.monotonic() - t0 < 5
    finally:
        for s in idle:
            s.close()
    by.check()


def test_frame_over_jute_maxbuffer_is_refused_and_logged(hostile_target):
    srv, host, port, by = hostile_target
    c = RawClient(host, port).start()
    c.send_frame(struct.pack(">ii", 1, 5) + R.SetDataRequest("/bystander", b"x" * 70000, -1).encode())
    assert c.is_closed_by_peer(5.0)
    assert "jute.maxbuffer" in srv.log_text()
    # a request just under the limit is fine
    c = RawClient(host, port).start()
    assert c.set_data("/bystander", b"y" * 60000).err == 0
    c.stop()
    by.check()


def test_pipelined_flood_gets_fifo_replies(hostile_target):
    """Thousands of requests in flight on one connection: every reply, in order."""
    srv, host, port, by = hostile_target
    c = RawClient(host, port).start()
    n = 3000
    payload = bytearray()
    for i in range(1, n + 1):
        op, rec = (3, R.ExistsRequest("/bystander", False)) if i % 3 else (5, R.SetDataRequest("/bystander", b"%d" % i, -1))
        body = struct.pack(">ii", i, op) + rec.encode()
        payload += struct.pack(">i", len(body)) + body
    c.sock.sendall(payload)
    for i in range(1, n + 1):
        r = c._read_reply()
        assert r.xid == i and r.err == 0
    c.stop()
    by.check()


def test_a_pipelining_client_does_not_hold_others_behind_its_whole_batch(coord_server):
    """One connection with tens of thousands of writes in flight (as a Kafka controller's batches):
    another client's request is served within a turn or two of the loop, not after everything the
    flood's last read delivered (one read of 256 KiB is ~1,700 of these writes). Counted in the
    flood's replies that arrive while the other client waits: bounded by a few turns of
    MAX_FRAMES_PER_TURN, whatever the machine's speed."""
    from coord.aio.server import MAX_FRAMES_PER_TURN
    host, port = coord_server.connect_string.split(":")
    port = int(port)
    setup = RawClient(host, port).start()
    setup.call(int(OpCode.create), R.CreateRequest("/flood", b"", [R.ACL(31, R.Id("world", "anyone"))], 0).encode())
    flood = RawClient(host, port).start()
    n = 40_000
    body_tail = R.SetDataRequest("/flood", b"x" * 100, -1).encode()
    blob = bytearray()
    for i in range(1, n + 1):
        body = struct.pack(">ii", i, int(OpCode.setData)) + body_tail
        blob += struct.pack(">i", len(body)) + body
    replies = [0]
    errors = []

    def read_flood():
        try:
            for i in range(1, n + 1):
                r = flood._read_reply()
                if r.xid != i or r.err != 0:
                    errors.append((i, r.xid, r.err))
                    return
                replies[0] = i
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    reader = threading.Thread(target=read_flood, daemon=True)
    reader.start()
    sender = threading.Thread(target=flood.sock.sendall, args=(bytes(blob),), daemon=True)
    sender.start()
    other = RawClient(host, port).start()
    deadline = time.monotonic() + 30
    while replies[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    waited = []
    while replies[0] < n - 5_000 and len(waited) < 30:
        before = replies[0]
        other.call(int(OpCode.getData), R.GetDataRequest("/flood", False).encode())
        waited.append(replies[0] - before)
    reader.join(60)
    sender.join(60)
    assert not errors, errors[:3]
    assert replies[0] == n
    assert len(waited) >= 5, f"the flood ended before the other client could measure ({waited})"
    waited.sort()
    # the other client's request waits for at most the turn it arrived in and the one it is served
    # in: a few times MAX_FRAMES_PER_TURN of the flood's writes, not a whole read's worth
    assert waited[len(waited) // 2] <= 6 * MAX_FRAMES_PER_TURN, waited
    other.stop()
    flood.stop()
    setup.stop()


def test_max_client_cnxns_per_ip(tmp_path):
    """maxClientCnxns=5: the sixth connection from one address is closed at once; the five work;
    closing one makes room again. Same as ZooKeeper."""
    p = start_pair(tmp_path, {"maxClientCnxns": "5"})
    try:
        for name, host, port in p.targets:
            held = [RawClient(host, port).start() for _ in range(5)]
            extra = RawClient(host, port)
            try:
                # the refusal can race the handshake: connect() itself may already fail (EPIPE)
                extra.open()
                extra.send_frame(extra.connect_request_bytes())
                extra.recv_frame()
                refused = False
            except (ConnectionClosed, OSError):
                refused = True
            assert refused, f"{name}: a sixth connection was served"
            assert all(c.exists("/").err == 0 for c in held), name
            held.pop().stop()
            deadline = time.monotonic() + 5
            while True:
                try:
                    again = RawClient(host, port).start()
                    break
                except (ConnectionClosed, OSError):
                    assert time.monotonic() < deadline, f"{name}: no room after a close"
                    time.sleep(0.1)
            assert again.exists("/").err == 0
            again.stop()
            for c in held:
                c.stop()
    finally:
        p.stop()


def test_concurrent_hostile_and_honest_clients(hostile_target):
    """Garbage from several threads while the bystander works."""
    srv, host, port, by = hostile_target
    stop = threading.Event()
    errors = []

    def attacker(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            try:
                data = _connect_frame() + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 500)))
                _hostile_connection(host, port, data, wait=0.05)
            except OSError:
                pass
            except Exception as e:  # noqa: BLE001
                errors.append(e)
    threads = [threading.Thread(target=attacker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(50):
            by.work()
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    by.check()
    assert srv.proc.poll() is None
    assert "Traceback" not in srv.log_text(), srv.log_text()[-3000:]


def test_garbage_bodies_leave_no_traceback(coord_shared):
    """Every opcode with every malformed body, on one coord: nothing but protocol answers."""
    host, port = coord_shared.connect_string.split(":")
    for op in OPS + UNKNOWN_OPS:
        for body in BODIES.values():
            _probe(host, int(port), op, body)
    log = coord_shared.log_text()
    assert "Traceback" not in log, log[-3000:]

"""Sessions against real ZooKeeper 3.8 and coord: timeouts, reconnects, expiry, closeSession, setWatches.

Each check runs the same script against both servers and compares what a client can observe
(ConnectResponse fields, error codes, events, which nodes survive); coord-only checks are named so.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from coord.core.javaorder import hashset_clone_order
from coord.jute import records as R
from tests.compat.conftest import start_pair
from tests.compat.rawclient import ConnectionClosed, RawClient
from tests.support.names import fresh

pytestmark = pytest.mark.realzk

TICK = 200  # ms: minSessionTimeout 400 ms, maxSessionTimeout 4 s, expiry within a second or two


@pytest.fixture(scope="module")
def fast_pair(tmp_path_factory):
    p = start_pair(tmp_path_factory.mktemp("sess"), {"tickTime": str(TICK)})
    yield p
    p.stop()


def each(pair, fn):
    """Run fn(name, host, port) against both servers; returns {name: result}."""
    return {name: fn(name, host, port) for name, host, port in pair.targets}


def same(results):
    assert results["coord"] == results["zk"], f"coord differs from ZooKeeper:\n zk:    {results['zk']}\n coord: {results['coord']}"
    return results["zk"]


def wait_for(cond, timeout=10.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


# -- negotiation -----------------------------------------------------------------------------------
def test_timeout_clamped_to_defaults(pair):
    """tickTime 2000: min 4000, max 40000."""
    def run(name, host, port):
        out = []
        for asked in (1, 1000, 3999, 4000, 10000, 40000, 40001, 1_000_000, -5):
            c = RawClient(host, port, timeout_ms=asked)
            resp = c.connect()
            out.append((asked, resp.timeOut, resp.protocolVersion, len(resp.passwd)))
            c.stop()
        return out
    got = same(each(pair, run))
    assert [t for _, t, _, _ in got] == [4000, 4000, 4000, 4000, 10000, 40000, 40000, 40000, 4000]


def test_timeout_clamped_to_configured_bounds(tmp_path):
    p = start_pair(tmp_path, {"minSessionTimeout": "3000", "maxSessionTimeout": "5000"})
    try:
        def run(name, host, port):
            out = []
            for asked in (100, 3000, 4200, 5000, 9000):
                c = RawClient(host, port, timeout_ms=asked)
                out.append(c.connect().timeOut)
                c.stop()
            return out
        assert same(each(p, run)) == [3000, 3000, 4200, 5000, 5000]
    finally:
        p.stop()


def test_connect_response_with_and_without_read_only_byte(pair):
    """A client that sends the trailing readOnly byte gets one back; an old client gets none."""
    def run(name, host, port):
        out = []
        for ro in (True, False):
            c = RawClient(host, port, read_only_byte=ro).open()
            c.send_frame(c.connect_request_bytes())
            payload = c.recv_frame()
            out.append((ro, len(payload), payload[-1] if ro else None))
            c.close_socket()
        return out
    assert same(each(pair, run)) == [(True, 37, 0), (False, 36, None)]


# -- reconnects ----------------------------------------------------------------------------------------
def test_reconnect_with_id_and_password(pair):
    eph = fresh("/re")   # the module's servers: a rerun must not meet this run's live ephemeral

    def run(name, host, port):
        a = RawClient(host, port, timeout_ms=10000).start()
        sid, pw = a.session_id, a.passwd
        assert a.create(eph, b"", flags=1).err == 0
        a.close_socket()   # no closeSession: the session lives on
        b = RawClient(host, port, timeout_ms=20000, session_id=sid, passwd=pw, last_zxid=a.last_zxid)
        resp = b.connect()
        out = [resp.timeOut, resp.sessionId == sid, resp.passwd == pw]
        st = b.exists(eph)
        out.append(st.err == 0 and st.value.ephemeralOwner == sid)
        out.append(b.get_ephemerals("/").value.ephemerals == [eph])
        b.stop()
        return out
    # the reconnect negotiates afresh: its own (clamped) timeout is answered and governs the session
    assert same(each(pair, run)) == [20000, True, True, True, True]


def test_reconnect_moves_session_off_the_old_connection(pair):
    """A second connection for the same session takes it over; the first is closed by the server."""
    def run(name, host, port):
        a = RawClient(host, port, timeout_ms=10000).start()
        b = RawClient(host, port, timeout_ms=10000, session_id=a.session_id, passwd=a.passwd)
        ok = b.connect().timeOut > 0
        closed = a.is_closed_by_peer(5.0)
        alive = b.exists("/").err == 0
        b.stop()
        return ok, closed, alive
    assert same(each(pair, run)) == (True, True, True)


# closing z1's socket under kazoo is how the test abandons it: kazoo's connection thread then dies on
# the closed fd (TypeError: Invalid file descriptor: -1), on both servers alike, and stops reconnecting
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_kazoo_client_id_reuse(pair):
    kz = fresh("/kz")

    def run(name, host, port):
        z1 = KazooClient(hosts=f"{host}:{port}", timeout=10)
        z1.start(timeout=15)
        z1.create(kz, b"e", ephemeral=True)
        sid, pw = z1.client_id
        # abandon z1's socket without closing the session
        z1._connection._socket.close()
        z2 = KazooClient(hosts=f"{host}:{port}", client_id=(sid, pw), timeout=10)
        z2.start(timeout=15)
        try:
            same_session = z2.client_id[0] == sid
            owner = z2.exists(kz).ephemeralOwner == sid
            z2.set(kz, b"still mine")
        finally:
            z2.stop()
            z2.close()
            z1.stop()
            z1.close()
        return same_session, owner
    assert same(each(pair, run)) == (True, True)


def test_wrong_password_is_refused(pair):
    def run(name, host, port):
        a = RawClient(host, port, timeout_ms=10000).start()
        bad = bytes(b ^ 0xFF for b in a.passwd)
        b = RawClient(host, port, timeout_ms=10000, session_id=a.session_id, passwd=bad)
        resp = b.connect()
        closed = b.is_closed_by_peer(5.0)
        # ZooKeeper drops the session's current connection before it checks the password; the
        # session itself lives on and the right password resumes it
        a_dropped = a.is_closed_by_peer(5.0)
        c = RawClient(host, port, timeout_ms=10000, session_id=a.session_id, passwd=a.passwd)
        resumed = c.connect().timeOut > 0 and c.exists("/").err == 0
        c.stop()
        return resp.timeOut, resp.sessionId, resp.passwd, closed, a_dropped, resumed
    assert same(each(pair, run)) == (0, 0, bytes(16), True, True, True)


def test_unknown_session_is_refused(pair):
    def run(name, host, port):
        b = RawClient(host, port, timeout_ms=10000, session_id=0x1234567, passwd=bytes(16))
        resp = b.connect()
        return resp.timeOut, resp.sessionId, resp.passwd, b.is_closed_by_peer(5.0)
    assert same(each(pair, run)) == (0, 0, bytes(16), True)


def test_last_zxid_seen_ahead_of_server_is_refused(pair):
    """ZooKeeper closes such a connection without a ConnectResponse ("client must try another server")."""
    def run(name, host, port):
        c = RawClient(host, port, last_zxid=1 << 40).open()
        c.send_frame(c.connect_request_bytes())
        try:
            c.recv_frame()
            answered = True
        except (ConnectionClosed, OSError):
            answered = False
        # and a reconnect of an existing session that has seen the future is refused the same way
        a = RawClient(host, port).start()
        b = RawClient(host, port, session_id=a.session_id, passwd=a.passwd, last_zxid=a.last_zxid + 1000).open()
        b.send_frame(b.connect_request_bytes())
        try:
            b.recv_frame()
            answered2 = True
        except (ConnectionClosed, OSError):
            answered2 = False
        a.stop()
        return answered, answered2
    assert same(each(pair, run)) == (False, False)


# -- expiry and closeSession ---------------------------------------------------------------------------
def test_expiry_deletes_ephemerals_and_fires_watches(fast_pair):
    root = fresh("/exp")   # the module's servers: a rerun must not meet this run's nodes

    def run(name, host, port):
        w = RawClient(host, port, timeout_ms=4000).start()
        assert w.create(root).err == 0
        a = RawClient(host, port, timeout_ms=400).start()
        assert a.negotiated_timeout == 2 * TICK
        assert a.create(f"{root}/e1", b"", flags=1).err == 0
        assert a.create(f"{root}/s", b"", flags=3).value.path == f"{root}/s0000000001"
        assert w.exists(f"{root}/e1", True).err == 0
        assert w.get_data(f"{root}/s0000000001", True).err == 0
        assert w.get_children(root, True).value.children is not None
        sid, pw = a.session_id, a.passwd
        a.close_socket()   # the client vanishes; the server must expire the session
        t0 = time.monotonic()
        gone = wait_for(lambda: w.exists(f"{root}/e1").err == -101, timeout=10)
        took = time.monotonic() - t0
        events = sorted(e.key() for e in w.drain_events())
        b = RawClient(host, port, timeout_ms=400, session_id=sid, passwd=pw)
        resp = b.connect()
        refused = (resp.timeOut, resp.sessionId, b.is_closed_by_peer(5.0))
        left = sorted(w.get_children(root).value.children)
        w.stop()
        return gone, took < 6, [(t, p[len(root):]) for t, p in events], refused, left
    got = same(each(fast_pair, run))
    assert got[0] and got[1]
    assert got[2] == [(2, "/e1"), (2, "/s0000000001"), (4, "")]
    assert got[3] == (0, 0, True)


def test_close_session_deletes_ephemerals_immediately(pair):
    # A fresh root (the module's servers: a rerun must not meet this run's nodes), one where /e1 or
    # /e2 is deleted before /e0: ZooKeeper deletes the ephemerals in HashSet order of their paths.
    while True:
        root = fresh("/cls")
        if hashset_clone_order([(f"{root}/e{i}", i) for i in range(3)])[0] != f"{root}/e0":
            break

    def run(name, host, port):
        w = RawClient(host, port).start()
        assert w.create(root).err == 0
        a = RawClient(host, port).start()
        for i in range(3):
            assert a.create(f"{root}/e{i}", b"", flags=1).err == 0
        assert a.create(f"{root}/keep").err == 0
        assert w.get_children(root, True).err == 0
        assert w.exists(f"{root}/e0", True).err == 0
        r = a.close_session()
        closed = a.is_closed_by_peer(5.0)
        # no waiting: the very next read of another session sees them gone
        kids = sorted(w.get_children(root).value.children)
        events = [e.key() for e in w.drain_events()]
        w.stop()
        return r.err, closed, kids, [(t, p[len(root):]) for t, p in events]
    got = same(each(pair, run))
    assert got[0] == 0 and got[1] and got[2] == ["keep"]
    # ZooKeeper deletes the ephemerals in HashSet order: here <root>/e1 or <root>/e2 goes before <root>/e0
    assert got[3] == [(4, ""), (2, "/e0")]


def test_requests_after_close_session(pair):
    """A request pipelined behind closeSession gets no answer: the connection closes after the
    closeSession reply."""
    def run(name, host, port):
        a = RawClient(host, port).start()
        x1 = a.submit(-11)
        x2 = a.submit(3, R.ExistsRequest("/", False).encode())
        out = []
        try:
            r1 = a.wait(x1)
            out.append(r1.err)
            r2 = a.wait(x2)
            out.append(r2.err)
        except ConnectionClosed:
            out.append("closed")
        return out
    assert same(each(pair, run)) == [0, "closed"]


# -- setWatches replay ---------------------------------------------------------------------------------
def test_set_watches_relative_zxid_rules(pair):
    """setWatches on a resumed session: data watches fire NodeDataChanged when mzxid > relativeZxid
    (NodeDeleted when the node is gone), exist watches NodeCreated when the node exists, child
    watches NodeChildrenChanged when pzxid > relativeZxid; the rest are armed and fire later."""
    r = fresh("/sw")   # the module's servers: a rerun must not meet this run's nodes

    def run(name, host, port):
        a = RawClient(host, port, timeout_ms=10000).start()
        w = RawClient(host, port).start()
        for p in ("", "/same", "/changed", "/gone", "/kids", "/quiet", "/born"):
            if p != "/born":
                assert w.create(r + p).err == 0
        assert w.create(r + "/kids/k0").err == 0
        rz = w.exists(r + "/kids/k0").zxid        # the session has seen everything so far
        w.set_data(r + "/changed", b"1")
        w.delete(r + "/gone")
        w.create(r + "/kids/k1")
        w.create(r + "/born")
        a.close_socket()
        b = RawClient(host, port, session_id=a.session_id, passwd=a.passwd, last_zxid=a.last_zxid)
        assert b.connect().timeOut > 0
        rep = b.set_watches(rz, data=[r + "/same", r + "/changed", r + "/gone"],
                            exist=[r + "/born", r + "/never"], child=[r + "/kids", r + "/quiet", r + "/gone"])
        replayed = sorted((e.type, e.path[len(r):]) for e in b.drain_events())
        # the armed ones fire on later changes
        w.set_data(r + "/same", b"x")
        w.create(r + "/never")
        w.create(r + "/quiet/q")
        later = sorted((e.type, e.path[len(r):]) for e in b.drain_events())
        # rz = 0 makes every existing watched node look changed
        c = RawClient(host, port, timeout_ms=10000).start()
        c.close_socket()
        d = RawClient(host, port, session_id=c.session_id, passwd=c.passwd)
        assert d.connect().timeOut > 0
        d.set_watches(0, data=[r + "/same"], exist=[], child=[r + "/kids"])
        zero = sorted((e.type, e.path[len(r):]) for e in d.drain_events())
        for x in (b, w, d):
            x.stop()
        return rep.err, rep.xid, replayed, later, zero
    got = same(each(pair, run))
    assert got[0] == 0 and got[1] == -8
    assert got[2] == [(2, "/gone"), (2, "/gone"), (3, "/changed"), (4, "/kids"), (1, "/born")] or \
        got[2] == sorted([(2, "/gone"), (2, "/gone"), (3, "/changed"), (4, "/kids"), (1, "/born")])
    assert got[3] == sorted([(3, "/same"), (1, "/never"), (4, "/quiet")])
    assert got[4] == sorted([(3, "/same"), (4, "/kids")])


def test_set_watches2_persistent_replay(pair):
    r = fresh("/sw2")   # the module's servers: a rerun must not meet this run's nodes

    def run(name, host, port):
        w = RawClient(host, port).start()
        assert w.create(r).err == 0
        a = RawClient(host, port, timeout_ms=10000).start()
        a.close_socket()
        b = RawClient(host, port, session_id=a.session_id, passwd=a.passwd)
        assert b.connect().timeOut > 0
        rep = b.set_watches2(b.last_zxid, persistent=[r], recursive=[r + "/deep"])
        w.create(r + "/x")
        w.create(r + "/deep")
        w.create(r + "/deep/y")
        w.set_data(r + "/deep/y", b"1")
        w.set_data(r, b"2")
        ev = [(e.type, e.path[len(r):]) for e in b.drain_events()]
        b.stop()
        w.stop()
        return rep.err, ev
    got = same(each(pair, run))
    assert got == (0, [(4, ""), (1, "/deep"), (4, ""), (1, "/deep/y"), (3, "/deep/y"), (3, "")])


class Proxy:
    """A TCP relay we can cut: the client sees its connection drop while the server stays up."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.up = True
        self.pairs = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                s = socket.create_connection(self.target)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.pairs.append((c, s))
            for x, y in ((c, s), (s, c)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    break
                dst.sendall(b)
        except OSError:
            pass
        for x in (src, dst):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self.lock:
            for c, s in self.pairs:
                for x in (c, s):
                    try:
                        x.shutdown(socket.SHUT_RDWR)
                        x.close()
                    except OSError:
                        pass
            self.pairs.clear()

    def restore(self):
        self.up = True

    def close(self):
        self.cut()
        self.lsock.close()


def test_kazoo_recovers_after_connection_loss(pair):
    """kazoo loses its connection (the server stays up) and changes happen meanwhile. kazoo 2.11 does
    not send setWatches: it fires NONE events at its watchers and its recipes re-read on reconnect.
    The session survives (same id, ephemeral kept) and DataWatch/ChildrenWatch see the missed changes."""
    from kazoo.recipe.watchers import ChildrenWatch, DataWatch

    r = fresh("/kzr")   # the module's servers: a rerun must not meet this run's nodes

    def run(name, host, port):
        w = RawClient(host, port).start()
        for p in ("", "/d", "/c"):
            assert w.create(r + p).err == 0
        proxy = Proxy(host, port)
        z = KazooClient(hosts=f"127.0.0.1:{proxy.port}", timeout=10)
        states = []
        z.add_listener(lambda st: states.append(st))
        z.start(timeout=15)
        data, kids = [], []
        try:
            sid = z.client_id[0]
            z.create(r + "/eph", b"", ephemeral=True)
            DataWatch(z, r + "/d", lambda d, st: data.append(d))
            ChildrenWatch(z, r + "/c", lambda c: kids.append(sorted(c)))
            proxy.cut()
            assert wait_for(lambda: KazooState.SUSPENDED in states, 10)
            w.set_data(r + "/d", b"changed while away")
            w.create(r + "/c/kid")
            proxy.restore()
            assert wait_for(lambda: z.connected and states[-1] == KazooState.CONNECTED, 20), states
            assert wait_for(lambda: data[-1:] == [b"changed while away"] and kids[-1:] == [["kid"]], 10), (data, kids)
            w.set_data(r + "/d", b"after")
            assert wait_for(lambda: data[-1:] == [b"after"], 10), data
            eph = w.exists(r + "/eph")
            return z.client_id[0] == sid, eph.err == 0 and eph.value.ephemeralOwner == sid, data[0], data[-2:]
        finally:
            z.stop()
            z.close()
            proxy.close()
            w.stop()
    got = same(each(pair, run))
    assert got == (True, True, b"", [b"changed while away", b"after"])


def test_kazoo_session_survives_server_restart(tmp_path):
    """Both servers restart from their own data (coord: its txn log); kazoo reconnects to the same
    session, whose ephemeral survived, and its recipes see changes made after the restart."""
    from kazoo.recipe.watchers import ChildrenWatch, DataWatch
    p = start_pair(tmp_path)
    try:
        def run(name, host, port):
            srv = p.zk if name == "zk" else p.coord
            r = "/rs"
            z = KazooClient(hosts=f"{host}:{port}", timeout=20)
            data, kids = [], []
            z.start(timeout=15)
            try:
                z.create(r, b"0")
                z.create(r + "/eph", b"", ephemeral=True)
                sid = z.client_id[0]
                DataWatch(z, r, lambda d, st: data.append(d))
                ChildrenWatch(z, r, lambda c: kids.append(sorted(c)))
                srv.stop()
                srv.start()
                assert wait_for(lambda: z.connected, 30), "kazoo did not reconnect"
                w = RawClient(host, port).start()
                eph = w.exists(r + "/eph")
                survived = eph.err == 0 and eph.value.ephemeralOwner == sid
                w.set_data(r, b"1")
                w.create(r + "/new")
                assert wait_for(lambda: data[-1:] == [b"1"] and kids[-1:] == [["eph", "new"]], 10), (data, kids)
                w.stop()
                return z.client_id[0] == sid, survived
            finally:
                z.stop()
                z.close()
        assert same(each(p, run)) == (True, True)
    finally:
        p.stop()


def _java_events(cli, root):
    out = []
    for ln in cli.output():
        if "WatchedEvent" in ln and "type:None" not in ln:
            parts = dict(x.split(":", 1) for x in ln.split()[1:] if ":" in x)
            out.append((parts.get("type"), parts.get("path", "")[len(root):]))
    return out


def test_java_client_replays_watches_after_connection_loss(pair):
    """ZooKeeper's Java client (zkCli.sh) loses its connection while the server stays up; changes
    happen meanwhile; on reconnect it sends setWatches with its last zxid and the server reports the
    missed changes at once (mzxid/pzxid > relativeZxid, NodeCreated for an existing exist-watch)."""
    from tests.compat.zkcli import ZkCli

    r = fresh("/jr")   # the module's servers: a rerun must not meet this run's nodes

    def run(name, host, port):
        w = RawClient(host, port).start()
        for p in ("", "/d", "/c", "/quiet"):
            assert w.create(r + p).err == 0
        proxy = Proxy(host, port)
        cli = ZkCli(f"127.0.0.1:{proxy.port}")
        try:
            for cmd in (f"get -w {r}/d", f"ls -w {r}/c", f"stat -w {r}/missing", f"get -w {r}/quiet",
                        f"create -e {r}/eph x"):
                cli.send(cmd)
            assert cli.wait_for(f"Created {r}/eph", 30), cli.output()
            proxy.cut()
            assert cli.wait_for("type:None path:null", 20, count=2), cli.output()   # Disconnected
            w.set_data(r + "/d", b"changed while away")
            w.create(r + "/c/kid")
            w.create(r + "/missing")
            proxy.restore()
            for ev in ("NodeCreated", "NodeDataChanged", "NodeChildrenChanged"):
                assert cli.wait_for(ev, 30), cli.output()
            replayed = sorted(_java_events(cli, r))
            w.set_data(r + "/quiet", b"later")
            assert cli.wait_for("NodeDataChanged", 10, count=2), cli.output()
            eph = w.exists(r + "/eph")
            return replayed, _java_events(cli, r)[-1], eph.err
        finally:
            cli.close()
            proxy.close()
            w.stop()
    got = same(each(pair, run))
    assert got == (sorted([("NodeDataChanged", "/d"), ("NodeChildrenChanged", "/c"), ("NodeCreated", "/missing")]),
                   ("NodeDataChanged", "/quiet"), 0)


def test_java_client_replays_watches_after_server_restart(tmp_path):
    """The server restarts from its data directory (coord: from its txn log); the Java client resumes
    its session and re-registers its watches with setWatches; later changes fire them."""
    from tests.compat.zkcli import ZkCli
    p = start_pair(tmp_path)
    try:
        def run(name, host, port):
            srv = p.zk if name == "zk" else p.coord
            r = "/jrs"
            w = RawClient(host, port).start()
            assert w.create(r).err == 0 and w.create(r + "/d").err == 0
            w.stop()
            cli = ZkCli(f"{host}:{port}")
            try:
                for cmd in (f"get -w {r}/d", f"ls -w {r}", f"stat -w {r}/missing", f"create -e {r}/eph x"):
                    cli.send(cmd)
                assert cli.wait_for(f"Created {r}/eph", 30), cli.output()
                srv.stop()
                srv.start()
                assert cli.wait_for("state:SyncConnected type:None", 30, count=2), (name, cli.output()[-15:])
                w = RawClient(host, port).start()
                eph = w.exists(r + "/eph").err
                w.set_data(r + "/d", b"1")
                w.create(r + "/missing")
                assert cli.wait_for("NodeCreated", 15) and cli.wait_for("NodeChildrenChanged", 15), cli.output()
                w.stop()
                return eph, sorted(_java_events(cli, r))
            finally:
                cli.close()
        got = same(each(p, run))
        assert got == (0, sorted([("NodeDataChanged", "/d"), ("NodeChildrenChanged", ""), ("NodeCreated", "/missing")]))
    finally:
        p.stop()

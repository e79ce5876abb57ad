"""Quorum TLS (sslQuorum, ssl.quorum.*, portUnification) on coord and on real ZooKeeper 3.8.

One harness for both (tests.support.ensemble.Ensemble, one zoo.cfg per server, the same key stores
from tests.security.certs): an ensemble whose peer links all run TLS serves kazoo; a server whose
certificate no one trusts is refused and says so in its peers' logs while the others serve; garbage
sent to a TLS quorum or election port closes that connection only; and (slow) an ensemble rolled from
plain to TLS one server at a time, ZooKeeper's documented three steps, keeps serving a writing kazoo
client without losing its session.
"""
from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from tests.security.certs import PASSWORD
from tests.support.ensemble import Ensemble, coord_ensemble_available
from tests.support.names import fresh
from tests.support.real_zk import available as zk_available

KINDS = ["coord", "zookeeper"]


def _need(kind: str) -> None:
    import os
    if kind == "coord" and not coord_ensemble_available():
        pytest.fail("coord ensemble members are missing")
    if kind == "zookeeper" and not zk_available():
        if os.environ.get("CI"):
            pytest.fail("real ZooKeeper 3.8 is missing (apt-get install zookeeper; scripts/setup.sh does)")
        pytest.skip("real ZooKeeper 3.8 is not installed (apt-get install zookeeper)")


@pytest.fixture(scope="module")
def stores(pki):
    """The ssl.quorum.* keys every good server uses, and the rogue server's (a CA nobody trusts)."""
    good = {"ssl.quorum.keyStore.location": str(pki.key_store("server", "JKS")),
            "ssl.quorum.keyStore.password": PASSWORD,
            "ssl.quorum.trustStore.location": str(pki.trust_store("JKS")),
            "ssl.quorum.trustStore.password": PASSWORD}
    rogue = dict(good, **{"ssl.quorum.keyStore.location": str(pki.key_store("rogue", "JKS"))})
    return good, rogue


def tls_ensemble(workdir, kind: str, member_cfg: dict, **kw) -> Ensemble:
    return Ensemble(workdir, 3, kind=kind, force_sync=False, member_cfg=member_cfg, **kw)


def _kazoo(hosts: str):
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry
    zk = KazooClient(hosts=hosts, timeout=30.0, connection_retry=KazooRetry(max_tries=-1, max_delay=1.0),
                     command_retry=KazooRetry(max_tries=-1, max_delay=1.0, deadline=60.0))
    zk.start(timeout=30)
    return zk


def _kazoo_on(ens: Ensemble, hosts: str):
    """_kazoo, and on a failure to connect the servers' logs in the report."""
    try:
        return _kazoo(hosts)
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"kazoo could not connect to {hosts}: {e!r}; modes {ens.modes()}\n{ens.dump_logs(30)}")


def two_serve_and_the_third_stays_out(ens: Ensemble, path: str) -> None:
    """Servers 1 and 2 (good certificates) elect a leader and serve a write; server 3 (a certificate
    they must refuse) keeps trying and never becomes leader or follower."""
    for m in ens.members.values():
        m.start()
    assert ens.wait_serving(sids=[1, 2], wait=120) in (1, 2)
    zk = _kazoo_on(ens, ens.connect_string([1, 2]))
    try:
        zk.create(path, b"ok")
        assert zk.get(path)[0] == b"ok"
    finally:
        zk.stop()
        zk.close()
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert ens.members[3].mode() not in ("leader", "follower"), "the refused server joined"
        time.sleep(0.5)


# -- a TLS ensemble: serves; garbage on its ports --------------------------------------------------------
@pytest.fixture(scope="module", params=KINDS)
def tls_ens(request, tmp_path_factory, stores):
    _need(request.param)
    good, _ = stores
    cfg = dict(good, sslQuorum="true")
    ens = tls_ensemble(tmp_path_factory.mktemp(f"qtls-{request.param}"), request.param,
                       {sid: cfg for sid in (1, 2, 3)})
    try:
        ens.start(wait=120)
        yield ens
    finally:
        ens.stop()


def test_tls_ensemble_serves(tls_ens):
    leader = tls_ens.wait_serving(wait=60)
    path = fresh("/qtls-serves")   # the module's ensemble: a rerun must not meet this run's node
    zk = _kazoo_on(tls_ens, tls_ens.connect_string())
    try:
        zk.create(path, b"x" * 100)
        # the write went through the leader to every follower over TLS links
        for sid, m in tls_ens.members.items():
            z1 = _kazoo_on(tls_ens, m.connect_string)
            try:
                z1.sync(path)
                assert z1.get(path)[0] == b"x" * 100, sid
            finally:
                z1.stop()
                z1.close()
        zk.delete(path)
    finally:
        zk.stop()
        zk.close()
    # both log ZooKeeper's line (QuorumPeer: "Using TLS encrypted quorum communication")
    assert "Using TLS encrypted quorum communication" in tls_ens.members[leader].log_text()


def _garbage(port: int, payload: bytes) -> bytes:
    """Send payload, read until the server closes (or 10 s); what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = b""
    try:
        s.sendall(payload)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    finally:
        s.close()
    return got


def test_garbage_on_tls_quorum_ports_closes_that_link_only(tls_ens):
    leader = tls_ens.wait_serving(wait=60)
    victim = tls_ens.members[leader]
    path = fresh("/qtls-garbage")   # the module's ensemble: a rerun must not meet this run's node
    zk = _kazoo_on(tls_ens, tls_ens.connect_string())
    try:
        zk.create(path, b"before")
        t0 = time.monotonic()
        # a TLS record header with a bad version then junk; plain HTTP; a fake ClientHello cut short
        for port in (victim.quorum_port, victim.election_port):
            for payload in (b"\x16\x03\x09\x00\x05hello" + bytes(range(256)) * 4,
                            b"GET / HTTP/1.0\r\n\r\n",
                            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40):
                _garbage(port, payload)
        elapsed = time.monotonic() - t0
        # nothing else was disturbed: same leader, every server serving, writes go through
        assert tls_ens.wait_serving(wait=30) == leader
        assert all(m.mode() in ("leader", "follower") for m in tls_ens.members.values())
        zk.set(path, b"after")
        assert zk.get(path)[0] == b"after"
        zk.delete(path)
    finally:
        zk.stop()
        zk.close()
    assert elapsed < 60, f"garbage connections were held {elapsed:.1f}s"
    if tls_ens.kind == "coord":
        log = victim.log_text()
        assert re.search(r"closing quorum peer 127\.0\.0\.1:\d+: TLS handshake failed", log), log[-3000:]


# -- an untrusted peer --------------------------------------------------------------------------------
REFUSED = {
    # coord: the acceptor names the peer and OpenSSL's reason
    "coord": re.compile(r"closing quorum peer 127\.0\.0\.1:\d+: TLS handshake failed: .*"
                        r"(CERTIFICATE_VERIFY_FAILED|UNKNOWN_CA|unknown ca|certificate verify failed)"),
    # ZooKeeper: Java's handshake exception on the election or quorum connection
    "zookeeper": re.compile(r"(SSLHandshakeException|certificate_unknown|PKIX path|unable to find valid "
                            r"certification path|bad_certificate)"),
}


@pytest.mark.parametrize("kind", KINDS)
def test_untrusted_peer_is_refused(kind, tmp_path, stores):
    """Server 3's certificate comes from a CA nobody trusts: 1 and 2 form the quorum and serve,
    3 never joins, and 1 and 2 log why they refused it."""
    _need(kind)
    good, rogue = stores
    ens = tls_ensemble(tmp_path / kind, kind, {1: dict(good, sslQuorum="true"), 2: dict(good, sslQuorum="true"),
                                               3: dict(rogue, sslQuorum="true")})
    try:
        two_serve_and_the_third_stays_out(ens, "/qtls-rogue")
        logs = ens.members[1].log_text() + ens.members[2].log_text()
        assert REFUSED[kind].search(logs), ens.dump_logs(40)
    finally:
        ens.stop()


# -- the rolling switch -----------------------------------------------------------------------------------
class Writer(threading.Thread):
    """A kazoo client writing one znode after another until stopped; records every session state."""

    def __init__(self, hosts: str):
        super().__init__(daemon=True)
        self.zk = _kazoo(hosts)
        self.session = self.zk.client_id[0]
        self.states: list[str] = []
        self.zk.add_listener(lambda st: self.states.append(str(st)))
        self.stop_ev = threading.Event()
        self.written = 0
        self.retried_applied = 0
        self.errors: list[str] = []
        self.zk.ensure_path("/roll")

    def run(self) -> None:
        from kazoo.exceptions import NodeExistsError
        while not self.stop_ev.is_set():
            try:
                try:
                    self.zk.retry(self.zk.create, f"/roll/n{self.written:06d}", b"v")
                except NodeExistsError:
                    # a retry of a create that was applied but whose reply the restart cut off
                    self.retried_applied += 1
                self.written += 1
            except Exception as e:  # noqa: BLE001  (recorded and asserted on)
                self.errors.append(repr(e))
                time.sleep(0.2)
            time.sleep(0.02)

    def progress(self, wait: float = 60.0) -> None:
        """Until at least one more write succeeded."""
        n = self.written
        deadline = time.monotonic() + wait
        while self.written <= n:
            assert time.monotonic() < deadline, f"no write for {wait}s (errors {self.errors[-3:]})"
            time.sleep(0.05)

    def finish(self) -> None:
        self.stop_ev.set()
        self.join(90)


def roll(ens: Ensemble, writer: Writer, change: dict) -> list[float]:
    """Restart one server at a time with `change` added to its zoo.cfg; writes must go on between."""
    pauses = []
    for sid, m in sorted(ens.members.items()):
        ens.member_cfg[sid].update(change)
        ens.write_configs()
        t0 = time.monotonic()
        m.stop()
        m.start()
        ens.wait_serving(wait=120)
        pauses.append(time.monotonic() - t0)
        writer.progress()
    return pauses


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_rolling_switch_plain_to_tls(kind, tmp_path, stores):
    """zookeeperAdmin's "Upgrading existing non-TLS cluster with no downtime": (1) portUnification=true
    on each server in turn, (2) sslQuorum=true on each, (3) portUnification=false on each. A kazoo
    client writes throughout: every write succeeds (retried across restarts), its session survives."""
    _need(kind)
    good, _ = stores
    ens = tls_ensemble(tmp_path / kind, kind, {sid: dict(good) for sid in (1, 2, 3)})
    writer = None
    try:
        ens.start(wait=120)
        writer = Writer(ens.connect_string())
        writer.start()
        writer.progress()
        steps = [("portUnification", {"portUnification": "true"}), ("sslQuorum", {"sslQuorum": "true"}),
                 ("TLS only", {"portUnification": "false"})]
        timings = {}
        for name, change in steps:
            timings[name] = roll(ens, writer, change)
        writer.progress()
        writer.finish()
        assert writer.errors == [], writer.errors[:5]
        assert "LOST" not in writer.states, writer.states
        assert writer.zk.client_id[0] == writer.session
        n = writer.written
        assert n > 0
        assert len(writer.zk.get_children("/roll")) == n
        print(f"{kind}: {n} writes ({writer.retried_applied} retried after a cut-off reply); "
              f"restart-to-serving seconds per step {timings}")
        # now TLS only: a plain peer connection is refused (coord: logged; both: no quorum effect)
        leader = ens.wait_serving(wait=60)
        if kind == "coord":
            m = ens.members[leader]
            _garbage(m.quorum_port, b"\x01\x01\x00\x00\x00\x00\x00\x0d" + b"\x00" * 17)
            time.sleep(0.5)
            assert re.search(r"closing quorum peer 127\.0\.0\.1:\d+: TLS handshake failed", m.log_text())
            for m in ens.members.values():
                assert "Using TLS encrypted quorum communication" in m.log_text()
    finally:
        if writer is not None and writer.is_alive():
            writer.finish()
        if writer is not None:
            writer.zk.stop()
            writer.zk.close()
        ens.stop()


# -- configuration and the certificate checks, in process ------------------------------------------------
def _cfg(tmp_path, lines: dict):
    from coord.aio import zoocfg
    text = "\n".join(f"{k}={v}" for k, v in {"dataDir": str(tmp_path), "clientPort": "2181", **lines}.items())
    p = tmp_path / "zoo.cfg"
    p.write_text(text + "\n")
    return zoocfg.load(p)


def test_quorum_keys_are_read(tmp_path, stores):
    good, _ = stores
    cfg = _cfg(tmp_path, dict(good, sslQuorum="true", portUnification="true", sslQuorumReloadCertFiles="true",
                              **{"ssl.quorum.clientAuth": "need", "ssl.quorum.protocol": "TLSv1.3",
                                 "ssl.quorum.enabledProtocols": "TLSv1.2,TLSv1.3",
                                 "ssl.quorum.hostnameVerification": "false"}))
    from coord.aio.zoocfg import quorum_tls_config
    q = quorum_tls_config(cfg)
    assert (q.ssl_quorum, q.port_unification, q.reload_cert_files) == (True, True, True)
    s = q.settings()
    assert s.key_store.location == good["ssl.quorum.keyStore.location"]
    assert s.protocol == "TLSv1.3" and s.enabled_protocols == ("TLSv1.2", "TLSv1.3")
    assert q.hostname_verification() is False
    assert cfg.ssl == {}   # the client port's ssl.* keys are apart


@pytest.mark.parametrize("lines, says", [
    ({"sslQuorum": "true"}, "ssl.quorum.keyStore.location is not set"),
    ({"sslQuorum": "maybe"}, "sslQuorum must be true or false"),
    ({"ssl.quorum.clientAuth": "sometimes"}, "ssl.quorum.clientAuth must be need, want or none"),
    ({"ssl.quorum.keyStore.colour": "x"}, "ssl.quorum.keyStore.colour: unknown key"),
    ({"sslQuorum": "true", "ssl.quorum.keyStore.location": "/nonexistent/ks.jks",
      "ssl.quorum.trustStore.location": "/nonexistent/ts.jks"}, "ssl.quorum.keyStore.location /nonexistent/ks.jks"),
    ({"sslQuorum": "true", "ssl.quorum.protocol": "TLSv1"}, "ssl.quorum.protocol 'TLSv1'"),
    ({"sslQuorum": "true", "ssl.quorum.hostnameVerification": "perhaps"}, "ssl.quorum.hostnameVerification"),
])
def test_bad_quorum_config_is_a_clear_error(tmp_path, stores, lines, says):
    from coord.aio.zoocfg import ConfigError
    good, _ = stores
    # the stores are given unless the case is about them
    base = {} if lines == {"sslQuorum": "true"} or "ssl.quorum.keyStore.location" in lines else dict(good)
    with pytest.raises(ConfigError) as e:
        _cfg(tmp_path, {**base, **lines})
    assert says in str(e.value)


def test_certificate_names_ip(pki):
    from cryptography.hazmat.primitives.serialization import Encoding
    from coord.aio.quorum_tls import certificate_names_ip
    server = pki.server.cert.public_bytes(Encoding.DER)      # SAN: localhost, 127.0.0.1
    other = pki.other.cert.public_bytes(Encoding.DER)        # no SAN
    assert certificate_names_ip(server, "127.0.0.1")
    assert certificate_names_ip(server, "::ffff:127.0.0.1")
    assert not certificate_names_ip(server, "127.0.0.2")
    assert not certificate_names_ip(other, "127.0.0.1")


def _serve_once(qt, make_inner):
    """A listener with QuorumTls.accept around make_inner; its port."""
    import asyncio
    loop = asyncio.get_running_loop()
    return loop.create_server(qt.accept(make_inner), "127.0.0.1", 0)


def test_peer_certificate_without_its_ip_is_refused(pki, caplog, stores):
    """hostnameVerification (default true) in the quorum: the acceptor checks the dialler's certificate
    against the dialler's address, as QuorumX509Util does. A CA-signed certificate without that IP is
    refused with a log line; the same peer with hostnameVerification=false is taken."""
    import asyncio
    import logging
    from coord.aio.quorum_tls import QuorumTls, QuorumTlsConfig
    good, _ = stores
    nosan = dict(good, **{"ssl.quorum.keyStore.location": str(pki.key_store("other", "PKCS12"))})

    class Inner(asyncio.Protocol):
        made = []

        def connection_made(self, t):
            Inner.made.append(t)
            t.write(b"hi")

    async def run(server_keys) -> tuple[bool, bool]:
        server = QuorumTls(QuorumTlsConfig(True, False, False, server_keys))
        client = QuorumTls(QuorumTlsConfig(True, False, False, nosan))
        Inner.made.clear()
        srv = await _serve_once(server, Inner)
        port = srv.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        got = loop.create_future()

        lost = loop.create_future()

        class Dialler(asyncio.Protocol):
            def data_received(self, data):
                got.done() or got.set_result(data)

            def connection_lost(self, exc):
                lost.done() or lost.set_result(1)

        await loop.create_connection(client.dial(Dialler, "127.0.0.1", lambda: lost.done() or lost.set_result(1)),
                                     "127.0.0.1", port)
        done, _ = await asyncio.wait([got, lost], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        srv.close()
        return got in done, bool(Inner.made)

    with caplog.at_level(logging.WARNING, logger="coord.tls"):
        assert asyncio.run(run(good)) == (False, False)
    assert "quorum peer certificate does not name 127.0.0.1" in caplog.text
    assert asyncio.run(run(dict(good, **{"ssl.quorum.hostnameVerification": "false"}))) == (True, True)


def test_reload_cert_files(tmp_path, pki, stores):
    """sslQuorumReloadCertFiles: a changed key store gives new contexts; without it, never."""
    import shutil
    from coord.aio.quorum_tls import QuorumTls, QuorumTlsConfig
    good, _ = stores
    ks = tmp_path / "quorum-ks.jks"
    shutil.copy(good["ssl.quorum.keyStore.location"], ks)
    keys = dict(good, **{"ssl.quorum.keyStore.location": str(ks)})
    on, off = QuorumTls(QuorumTlsConfig(True, False, True, keys)), QuorumTls(QuorumTlsConfig(True, False, False, keys))
    before = (on.server_ctx(), on.client_ctx(), off.server_ctx())
    shutil.copy(pki.key_store("admin", "JKS"), ks)
    time.sleep(1.2)   # ContextSource looks at the files at most once a second
    after = (on.server_ctx(), on.client_ctx(), off.server_ctx())
    assert after[0] is not before[0] and after[1] is not before[1]
    assert after[2] is before[2]


def test_unified_port_bounds_the_wait_for_the_first_byte(caplog, stores):
    """portUnification: a connection that sends nothing is closed after
    ssl.quorum.handshakeDetectionTimeoutMillis, with a log line; one that sends plain bytes reaches
    the peer protocol untouched."""
    import asyncio
    import logging
    from coord.aio.quorum_tls import QuorumTls, QuorumTlsConfig
    good, _ = stores
    keys = dict(good, **{"ssl.quorum.handshakeDetectionTimeoutMillis": "300"})

    class Inner(asyncio.Protocol):
        got = []

        def data_received(self, data):
            Inner.got.append(data)

    async def run():
        qt = QuorumTls(QuorumTlsConfig(False, True, False, keys))
        srv = await _serve_once(qt, Inner)
        port = srv.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        t0 = time.monotonic()
        assert await asyncio.wait_for(r.read(), 10) == b""      # closed by the server
        silent = time.monotonic() - t0
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        w2.write(b"\x01plain")
        await w2.drain()
        for _ in range(100):
            if Inner.got:
                break
            await asyncio.sleep(0.02)
        w.close()
        w2.close()
        srv.close()
        return silent

    with caplog.at_level(logging.WARNING, logger="coord.tls"):
        silent = asyncio.run(run())
    assert 0.25 <= silent < 8, silent
    assert "nothing received in 300 ms" in caplog.text
    assert Inner.got == [b"\x01plain"]

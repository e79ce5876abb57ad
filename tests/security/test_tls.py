"""Client-port TLS and x509 identities, differential: real ZooKeeper 3.8 (Netty, secureClientPort)
and coord with the same zoo.cfg ssl.* keys and the same key and trust stores (made in the test)."""
from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from coord.jute import records as R
from coord.jute.protocol import Err
from tests.compat.rawclient import RawClient
from tests.security.certs import ssl_keys
from tests.security.conftest import start_sasl_pair
from tests.support.real_zk import four_letter

pytestmark = pytest.mark.realzk


def admin_dn(pki) -> str:
    """The admin certificate's DN as Java writes it (what superUser must equal)."""
    from cryptography.hazmat.primitives.serialization import Encoding
    from coord.aio.tls import x509_identities
    return x509_identities(pki.admin.cert.public_bytes(Encoding.DER), None)[0][1]


@pytest.fixture(scope="module")
def tls_pair(pki, tmp_path_factory):
    cfg = dict(ssl_keys(pki, "JKS"), **{"X509AuthenticationProvider.superUser": admin_dn(pki)})
    p = start_sasl_pair(tmp_path_factory.mktemp("tls"), None, cfg, secure=True)
    yield p
    p.stop()


def secure_targets(pair):
    return [("zk", "127.0.0.1", pair.zk.secure_port), ("coord", "127.0.0.1", pair.coord.secure_port)]


def both(pair, fn, targets=None):
    out = {name: fn(host, port) for name, host, port in (targets or secure_targets(pair))}
    return out["zk"], out["coord"]


def client_context(pki, who: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(str(pki.ca_pem()))
    if who:
        key, cert = pki.pem(who)
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def tls_client(pki, host, port, who: str | None) -> RawClient:
    """A raw ZooKeeper client over TLS (session established); raises on a refused handshake."""
    c = RawClient(host, port)
    raw = socket.create_connection((host, port), timeout=10)
    c.sock = client_context(pki, who).wrap_socket(raw)
    c.connect()
    return c


def outcome(fn):
    """fn's result, or the kind of failure (a refused handshake shows differently per server)."""
    try:
        return fn()
    except (ssl.SSLError, ConnectionError, OSError, ValueError) as e:
        return f"failed:{type(e).__name__ if not isinstance(e, ssl.SSLError) else 'ssl'}"


def ids_of(c: RawClient):
    r = c.whoami()
    assert r.err == 0
    return [(i.authScheme, i.user) for i in r.value.clientInfo if i.authScheme != "ip"]


def test_client_certificate_becomes_x509_identity(pki, tls_pair):
    def run(host, port):
        c = tls_client(pki, host, port, "client")
        ids = ids_of(c)
        c.close_socket()
        return ids
    zk, coord = both(tls_pair, run)
    assert zk == coord
    assert len(zk) == 1 and zk[0][0] == "x509" and zk[0][1].startswith("1.2.840.113549.1.9.1=#")


def test_super_user_dn(pki, tls_pair):
    def run(host, port):
        c = tls_client(pki, host, port, "admin")
        ids = ids_of(c)
        c.close_socket()
        return ids
    zk, coord = both(tls_pair, run)
    assert zk == coord
    assert ("super", "") in zk and ("x509", admin_dn(pki)) in zk


@pytest.mark.parametrize("who", [None, "rogue"])
def test_missing_or_untrusted_certificate_refused(pki, tls_pair, who):
    def run(host, port):
        def go():
            c = tls_client(pki, host, port, who)
            r = c.whoami()
            c.close_socket()
            return r.err
        return outcome(go).startswith("failed")
    zk, coord = both(tls_pair, run)
    assert zk == coord is True


def test_x509_acls(pki, tls_pair):
    def run(host, port):
        out = {}
        owner = tls_client(pki, host, port, "client")
        dn = ids_of(owner)[0][1]
        owner.delete("/x509-node")
        out["create"] = owner.create("/x509-node", b"v", acl=[R.ACL(31, R.Id("x509", dn))]).err
        owner.delete("/x509-creator")
        out["create_auth"] = owner.create("/x509-creator", b"v", acl=[R.ACL(31, R.Id("auth", ""))]).err
        r = owner.get_acl("/x509-creator")
        out["creator_acl"] = [(a.perms, a.id.scheme, a.id.id) == (31, "x509", dn) for a in r.value.acl]
        out["owner"] = owner.get_data("/x509-node").err
        out["bad_dn"] = owner.create("/x509-bad", b"", acl=[R.ACL(31, R.Id("x509", "nokey=1,,x"))]).err
        for who in ("other", "admin"):
            c = tls_client(pki, host, port, who)
            out[who] = c.get_data("/x509-node").err
            c.close_socket()
        owner.close_socket()
        return out
    zk, coord = both(tls_pair, run)
    assert zk == coord
    assert zk["owner"] == 0 and zk["other"] == Err.NOAUTH and zk["admin"] == 0
    assert zk["creator_acl"] == [True]


def test_plain_port_still_plain(tls_pair):
    def run(host, port):
        c = RawClient(host, port)
        c.connect()
        ids = ids_of(c)
        c.close_socket()
        return ids, four_letter(host, port, "ruok")
    zk, coord = both(tls_pair, run, tls_pair.targets)
    assert zk == coord == ([], "imok")


def test_kazoo_use_ssl(pki, tls_pair):
    key, cert = pki.pem("client")

    def run(host, port):
        k = KazooClient(f"{host}:{port}", use_ssl=True, ca=str(pki.ca_pem()), certfile=str(cert),
                        keyfile=str(key), verify_certs=True)
        try:
            k.start(15)
            k.ensure_path("/kazoo-tls")
            k.set("/kazoo-tls", b"hello")
            return k.get("/kazoo-tls")[0]
        finally:
            k.stop()
            k.close()
    zk, coord = both(tls_pair, run)
    assert zk == coord == b"hello"


def test_garbage_and_stalled_handshakes_close_only_that_connection(pki, tls_pair):
    def run(host, port):
        good = tls_client(pki, host, port, "client")
        out = {}
        for name, payload in (("garbage", b"\x16\x03\x01\x00\x05hello-not-tls" * 20),
                              ("http", b"GET / HTTP/1.1\r\n\r\n")):
            s = socket.create_connection((host, port), timeout=5)
            s.sendall(payload)
            try:
                data = s.recv(4096)
                out[name] = "closed" if data == b"" or data[:1] in (b"\x15", b"\x16") else data[:20]
            except (ConnectionResetError, socket.timeout) as e:
                out[name] = "closed" if isinstance(e, ConnectionResetError) else "open"
            s.close()
        out["good_after"] = good.exists("/").err
        good.close_socket()
        return out
    zk, coord = both(tls_pair, run)
    assert zk == coord
    assert zk["good_after"] == 0


def test_handshake_stall_is_bounded(pki, tmp_path):
    """A client that opens the TLS port and never finishes its handshake is closed after
    coord.tlsHandshakeTimeoutMs; other clients are served meanwhile."""
    cfg = dict(ssl_keys(pki, "PEM"), **{"coord.tlsHandshakeTimeoutMs": "1500"})
    from tests.support.coord_server import CoordProcess
    from tests.support.real_zk import free_port
    port = free_port()
    srv = CoordProcess(tmp_path / "c", extra_cfg=dict(cfg, secureClientPort=str(port))).start()
    try:
        stalled = socket.create_connection(("127.0.0.1", port), timeout=10)
        stalled.sendall(b"\x16\x03\x01")   # the first bytes of a ClientHello, then nothing
        good = tls_client(pki, "127.0.0.1", port, "client")
        assert good.exists("/").err == 0
        t0 = time.monotonic()
        try:
            got = stalled.recv(100)
        except ConnectionResetError:
            got = b""
        waited = time.monotonic() - t0
        assert got == b"", got           # closed by the server, not answered
        assert 0.5 < waited < 8, waited  # after about coord.tlsHandshakeTimeoutMs (1.5 s)
        assert good.exists("/").err == 0
        good.close_socket()
        assert "TLS handshake not finished" in srv.log_text()
    finally:
        srv.stop()


@pytest.mark.parametrize("kind", ["PEM", "PKCS12", "JKS"])
def test_store_formats(pki, tmp_path, kind):
    p = start_sasl_pair(tmp_path, None, ssl_keys(pki, kind), secure=True)
    try:
        def run(host, port):
            c = tls_client(pki, host, port, "other")
            ids = ids_of(c)
            c.close_socket()
            return ids
        zk, coord = both(p, run, secure_targets(p))
        assert zk == coord == [("x509", "CN=other-client")]
    finally:
        p.stop()


def test_port_unification_and_client_auth_want(pki, tmp_path):
    cfg = dict(ssl_keys(pki, "JKS", client_auth="want"), **{"client.portUnification": "true"})
    p = start_sasl_pair(tmp_path, None, cfg, secure=True)
    try:
        def run(host, port):
            plain = RawClient(host, port)
            plain.connect()
            out = {"plain": ids_of(plain)}
            plain.close_socket()
            for who in (None, "other"):
                c = tls_client(pki, host, port, who)
                out[str(who)] = ids_of(c)
                c.close_socket()
            out["4lw"] = four_letter(host, port, "ruok")
            return out
        zk, coord = both(p, run, p.targets)
        assert zk == coord
        assert zk["None"] == [] and zk["other"] == [("x509", "CN=other-client")]
    finally:
        p.stop()


def test_ensemble_member_serves_tls(pki, tmp_path):
    """An ensemble member (the Zab node, not the standalone server) opens the same TLS port."""
    from tests.support.ensemble import Ensemble
    from tests.support.real_zk import free_port
    port = free_port()
    ens = Ensemble(tmp_path, 1, extra_cfg=dict(ssl_keys(pki, "PKCS12"), secureClientPort=str(port)))
    ens.start()
    try:
        c = tls_client(pki, "127.0.0.1", port, "other")
        assert ids_of(c) == [("x509", "CN=other-client")]
        assert c.create("/on-ensemble", b"x").err == 0
        c.close_socket()
    finally:
        ens.stop()


def test_certificates_reload_when_the_store_changes(pki, tmp_path):
    """coord rebuilds its TLS context when a store file changes (a coord extension: ZooKeeper 3.8
    reloads only quorum certificates); a store that no longer loads keeps the previous one."""
    import ipaddress
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from tests.security.certs import _name
    from tests.support.coord_server import CoordProcess
    from tests.support.real_zk import free_port
    cfg = ssl_keys(pki, "PKCS12")
    store = Path(cfg["ssl.keyStore.location"])
    port = free_port()
    srv = CoordProcess(tmp_path / "c", extra_cfg=dict(cfg, secureClientPort=str(port))).start()

    def server_cn():
        c = tls_client(pki, "127.0.0.1", port, "other")
        cert = c.sock.getpeercert()
        assert c.exists("/").err == 0
        c.close_socket()
        return dict(x[0] for x in cert["subject"])["commonName"]
    try:
        assert server_cn() == "localhost"
        new = pki.issue(_name((NameOID.COMMON_NAME, "localhost-rotated")),
                        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        pki.server = new
        store.unlink()
        assert pki.key_store("server", "PKCS12") == store
        deadline = time.monotonic() + 15
        while server_cn() != "localhost-rotated":
            assert time.monotonic() < deadline, "certificate not reloaded"
            time.sleep(0.3)
        store.write_bytes(b"not a store")
        time.sleep(1.5)
        assert server_cn() == "localhost-rotated"
        assert "keeping the previous one" in srv.log_text()
    finally:
        srv.stop()


def test_pipelined_large_replies_over_tls(pki, tls_pair):
    """40 pipelined 1 MB getData replies through one TLS connection arrive whole and in order."""
    from coord.jute.codec import decode
    data = bytes(range(256)) * 4000

    def run(host, port):
        c = tls_client(pki, host, port, "other")
        for i in range(3):
            c.delete(f"/tls-big{i}")
            assert c.create(f"/tls-big{i}", data).err == 0
        xids = [c.submit(4, R.GetDataRequest(f"/tls-big{i % 3}", False).encode()) for i in range(40)]
        got = []
        for x in xids:
            r = c.wait(x)
            got.append(r.err == 0 and decode(R.GetDataResponse, r.body)[0].data == data)
        c.close_socket()
        return got
    zk, coord = both(tls_pair, run)
    assert zk == coord == [True] * 40


def test_records_cut_anywhere_merged_and_larger_than_the_buffers(pki, tls_pair):
    """The TLS read path (coord.aio.tls.TlsProtocol, buffered on both sides): the frames test of
    tests/unit/test_client_reads.py through TLS on both servers: a handshake a byte at a time,
    requests cut mid-frame and merged, a 600 KB frame over many records, two connections in turn."""
    from coord.aio.tls import TLS_READ_BYTES, TlsProtocol
    from tests.unit.test_client_reads import _frames_cut_anywhere
    import asyncio
    assert issubclass(TlsProtocol, asyncio.BufferedProtocol) and TLS_READ_BYTES >= 64 * 1024

    def open_tls(host, port):
        raw = socket.create_connection((host, port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client_context(pki, "other").wrap_socket(raw)

    for name, host, port in secure_targets(tls_pair):
        plain = tls_pair.zk if name == "zk" else tls_pair.coord
        _frames_cut_anywhere(f"{host}:{port}", open_tls, plain.connect_string)

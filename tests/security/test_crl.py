"""`ssl.crl=true`: a client certificate revoked in the CRL its CRL distribution point names is
refused, differential: real ZooKeeper 3.8 (Java's revocation checking with CRLDP, which X509Util
turns on) and coord with the same zoo.cfg keys and stores. The CRL is served by a small HTTP server
the test starts; the certificates are made here with `cryptography`. A certificate with no
distribution point has no known status and is refused by both; one that is not revoked gets in.
With `ssl.quorum.crl=true` (slow) a member whose certificate is revoked never joins the quorum.
With `ssl.ocsp=true` the OCSP responder named in the certificate (a real `openssl ocsp` started by
the test) decides: a good certificate gets in, a revoked one is refused, on both.
`ssl.context.supplier.class` stops coord's start naming the line (no JVM to load a class into)."""
from __future__ import annotations

import datetime
import http.server
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from coord.aio import zoocfg
from tests.security.certs import Identity, ssl_keys
from tests.security.conftest import start_sasl_pair
from tests.compat.rawclient import ConnectionClosed
from tests.security.test_tls import ids_of, tls_client

pytestmark = pytest.mark.realzk


def _issue(pki, cn: str, crl_url: str | None, san: list | None = None, ocsp_url: str | None = None) -> Identity:
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(pki.ca.cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if ocsp_url:
        b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    if crl_url:
        b = b.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
    return Identity(key, b.sign(pki.ca.key, hashes.SHA256()), [pki.ca.cert])


def _crl(pki, revoked: list[Identity]) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateRevocationListBuilder().issuer_name(pki.ca.cert.subject)
         .last_update(now - datetime.timedelta(minutes=5)).next_update(now + datetime.timedelta(days=1)))
    for ident in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(ident.cert.serial_number)
                                      .revocation_date(now - datetime.timedelta(minutes=1)).build())
    return b.sign(pki.ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def crl_server():
    """An HTTP server answering the CRL at /ca.crl (its `body` set by the test)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):   # noqa: N802
            self.send_response(200 if self.path == "/ca.crl" else 404)
            self.send_header("Content-Type", "application/pkix-crl")
            self.send_header("Content-Length", str(len(srv.body)))
            self.end_headers()
            self.wfile.write(srv.body)
            srv.hits += 1

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.body, srv.hits = b"", 0
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def crl_pair(pki, crl_server, ocsp_responder, tmp_path_factory):
    """Both switches on, as an operator securing a cluster would: a certificate naming an OCSP
    responder is decided by it, one naming only a CRL distribution point by the CRL."""
    url = f"http://127.0.0.1:{crl_server.server_address[1]}/ca.crl"
    pki.crl_good = _issue(pki, "crl-good", url)
    pki.crl_revoked = _issue(pki, "crl-revoked", url)
    pki.crl_none = _issue(pki, "crl-no-distribution-point", None)
    crl_server.body = _crl(pki, [pki.crl_revoked])
    p = start_sasl_pair(tmp_path_factory.mktemp("crl"), None,
                        dict(ssl_keys(pki, "JKS"), **{"ssl.crl": "true", "ssl.ocsp": "true"}), secure=True)
    yield p
    p.stop()


def test_revoked_or_unknown_client_certificate_refused(pki, crl_pair, crl_server):
    def run(host, port):
        out = {}
        for who in ("crl_good", "crl_revoked", "crl_none", "ocsp_good", "ocsp_revoked"):
            def go():
                c = tls_client(pki, host, port, who)
                ids = ids_of(c)
                c.close_socket()
                return ids
            try:
                out[who] = [u for _, u in go()]
            except (ssl.SSLError, OSError, ConnectionClosed):   # refused in or right after the handshake
                out[who] = "refused"
        return out
    hits = crl_server.hits
    got = {"zk": run("127.0.0.1", crl_pair.zk.secure_port), "coord": run("127.0.0.1", crl_pair.coord.secure_port)}
    assert got["zk"] == got["coord"], got
    assert got["coord"] == {"crl_good": ["CN=crl-good"], "crl_revoked": "refused", "crl_none": "refused",
                            "ocsp_good": ["CN=ocsp-good"], "ocsp_revoked": "refused"}
    assert crl_server.hits > hits            # both fetched the CRL from the distribution point
    assert "certificate revoked" in crl_pair.coord.log_text()
    assert "names no CRL distribution point" in crl_pair.coord.log_text()
    assert "OCSP http://" in crl_pair.coord.log_text()    # the OCSP-revoked one, refused by the responder


@pytest.mark.parametrize("line,message", [
    ("ssl.ocsp=sometimes", "ssl.ocsp must be true or false"),
    ("ssl.quorum.ocsp=1", "ssl.quorum.ocsp must be true or false"),
    ("ssl.context.supplier.class=com.example.Supplier", "names a Java class"),
    ("ssl.quorum.context.supplier.class=com.example.Supplier", "names a Java class"),
    ("ssl.crl=maybe", "ssl.crl must be true or false"),
])
def test_keys_coord_cannot_honour_stop_the_start_naming_the_line(line, message):
    with pytest.raises(zoocfg.ConfigError, match=message) as e:
        zoocfg.parse(f"tickTime=2000\n{line}\n", "zoo.cfg")
    assert "zoo.cfg:2" in str(e.value)


def test_crl_keys_are_read():
    cfg = zoocfg.parse("ssl.crl=true\nssl.ocsp=false\nssl.quorum.crl=true\n", "zoo.cfg")
    from coord.aio.tls import TlsSettings
    assert TlsSettings.from_keys(cfg.ssl).crl
    assert TlsSettings.from_keys(cfg.ssl_quorum_keys, prefix="ssl.quorum").crl


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["coord", "zookeeper"])
def test_quorum_peer_with_a_revoked_certificate_is_refused(kind, pki, crl_server, tmp_path):
    """ssl.quorum.crl=true on a TLS ensemble: server 3's certificate is revoked in the CRL its
    distribution point names; 1 and 2 form the quorum and serve, 3 never joins."""
    import ipaddress
    from tests.security.certs import PASSWORD
    from tests.security.test_quorum_tls import _need, tls_ensemble, two_serve_and_the_third_stays_out
    _need(kind)
    url = f"http://127.0.0.1:{crl_server.server_address[1]}/ca.crl"
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    pki.q_good = _issue(pki, "localhost", url, san)
    pki.q_revoked = _issue(pki, "localhost", url, san)
    crl_server.body = _crl(pki, [pki.q_revoked])
    trust = str(pki.trust_store("JKS"))

    def cfg(who):
        return {"sslQuorum": "true", "ssl.quorum.crl": "true", "ssl.quorum.keyStore.password": PASSWORD,
                "ssl.quorum.keyStore.location": str(pki.key_store(who, "JKS")),
                "ssl.quorum.trustStore.location": trust, "ssl.quorum.trustStore.password": PASSWORD}
    ens = tls_ensemble(tmp_path / kind, kind, {1: cfg("q_good"), 2: cfg("q_good"), 3: cfg("q_revoked")})
    try:
        two_serve_and_the_third_stays_out(ens, "/qcrl")
        if kind == "coord":
            logs = ens.members[1].log_text() + ens.members[2].log_text()
            assert "certificate revoked" in logs, ens.dump_logs(40)
    finally:
        ens.stop()


@pytest.fixture(scope="module")
def ocsp_responder(pki, tmp_path_factory):
    """`openssl ocsp` answering for the test CA from an index the test writes (`write(good, revoked)`)."""
    import shutil
    import subprocess
    import time

    from tests.support.real_zk import free_port
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing (Debian openssl)")
    d = tmp_path_factory.mktemp("ocsp")
    key = d / "ca.key"
    key.write_bytes(pki.ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pki.ocsp_good = _issue(pki, "ocsp-good", None, ocsp_url=url)
    pki.ocsp_revoked = _issue(pki, "ocsp-revoked", None, ocsp_url=url)
    lines = []
    for ident, status in ((pki.ocsp_good, "V"), (pki.ocsp_revoked, "R")):
        exp = ident.cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
        rev = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)).strftime(
            "%y%m%d%H%M%SZ") if status == "R" else ""
        cn = ident.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        lines.append(f"{status}\t{exp}\t{rev}\t{ident.cert.serial_number:X}\tunknown\t/CN={cn}")
    (d / "index.txt").write_text("\n".join(lines) + "\n")
    ca = str(pki.ca_pem())
    proc = subprocess.Popen(["openssl", "ocsp", "-index", str(d / "index.txt"), "-port", str(port),
                             "-rsigner", ca, "-rkey", str(key), "-CA", ca, "-ignore_err"],
                            stdout=open(d / "ocsp.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # (its log line, not a probe connection: the responder serves one connection at a time and
        # waits on one that sends nothing)
        deadline = time.monotonic() + 20
        while "waiting for OCSP client connections" not in (d / "ocsp.log").read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"openssl ocsp did not start: {(d / 'ocsp.log').read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


"""SASL GSSAPI (Kerberos) on the client port, differential: real ZooKeeper 3.8 and coord with the same
JAAS Server section (Krb5LoginModule, keytab), the same krb5.conf and a real MIT KDC on loopback.

Clients: kazoo `sasl_options` GSSAPI (pure-sasl + pykerberos), the exchange by hand on python-gssapi
(to send broken, replayed or misplaced tokens), and zkCli.sh (tests/security/test_sasl_gssapi_zkcli.py).
"""
from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl

from coord.jute import records as R
from coord.jute.protocol import Err
from tests.security.conftest import SASL_PROVIDER, start_krb_pair
from tests.security.krb import SERVER, GssClient, gss_login, write_krb_jaas
from tests.security.saslraw import session, step
from tests.security.test_enforce import _starts
from tests.support.names import fresh

pytestmark = pytest.mark.realzk

AUTHFAILED = int(Err.AUTHFAILED)


def both(pair, fn):
    """fn(port) on real ZooKeeper and on coord (clients connect to `localhost`, the service host)."""
    return fn(pair.zk.client_port), fn(pair.coord.client_port)


def ids_of(c):
    r = c.whoami()
    assert r.err == 0
    return sorted((i.authScheme, i.user) for i in r.value.clientInfo if i.authScheme != "ip")


def raw_login(port, principal, **kw):
    c = session("localhost", port)
    steps = gss_login(c, principal, **kw)
    return c, steps


def test_login_identity_and_steps(realm, krb_pair):
    def run(port):
        c, steps = raw_login(port, realm.principal("client"))
        ids = ids_of(c)
        c.close_socket()
        return [s.shape() for s in steps], ids
    zk, coord = both(krb_pair, run)
    assert zk == coord
    # AP-REP, the wrapped layer offer, then a null token: complete.
    assert zk[0] == [(0, False, 0, False), (0, False, 0, False), (0, True, 0, False)]
    assert zk[1] == [("sasl", realm.principal("client"))]


def test_service_principal_and_super(realm, krb_pair):
    def run(port):
        out = []
        for who in ("kafka/localhost", "admin"):
            c, _ = raw_login(port, realm.principal(who))
            out.append(ids_of(c))
            c.close_socket()
        return out
    zk, coord = both(krb_pair, run)
    assert zk == coord
    assert zk[0] == [("sasl", realm.principal("kafka/localhost"))]
    assert ("super", "") in zk[1]


def test_client_authzid_is_not_the_identity(realm, krb_pair):
    """The authzid a client asks for does not become its id: ZooKeeper maps the authenticated name."""
    def run(port):
        c, _ = raw_login(port, realm.principal("client"), authzid="admin")
        ids = ids_of(c)
        c.close_socket()
        return ids
    zk, coord = both(krb_pair, run)
    assert zk == coord == [("sasl", realm.principal("client"))]


def _acl_scenario(realm, port, acl_node, creator_node):
    """client creates nodes readable by itself only (a sasl: ACL, and CREATOR_ALL); another principal
    and an anonymous client are refused; the zookeeper.superUser principal reads them."""
    out = {}
    me = realm.principal("client")
    owner, _ = raw_login(port, me)
    out["create"] = owner.create(acl_node, b"v", [R.ACL(31, R.Id("sasl", me))]).err
    out["creator"] = owner.create(creator_node, b"v", [R.ACL(31, R.Id("auth", ""))]).err
    r = owner.get_acl(creator_node)
    out["creator_acl"] = [(a.id.scheme, a.id.id, a.perms) for a in r.value.acl] if r.err == 0 else r.err
    other, _ = raw_login(port, realm.principal("other"))
    out["other_read"] = other.get_data(acl_node).err
    anon = session("localhost", port)
    out["anon_read"] = anon.get_data(acl_node).err
    admin, _ = raw_login(port, realm.principal("admin"))
    out["super_read"] = admin.get_data(acl_node).err
    out["owner_read"] = owner.get_data(acl_node).err
    for p in (acl_node, creator_node):
        out["delete" + p] = owner.delete(p).err
    for c in (owner, other, anon, admin):
        c.close_socket()
    return out


def test_acls_with_sasl_ids(realm, krb_pair):
    # the module's servers: a rerun must not meet this run's nodes (the same names on both servers)
    nodes = fresh("/gss-acl"), fresh("/gss-creator")
    zk, coord = both(krb_pair, lambda port: _acl_scenario(realm, port, *nodes))
    assert zk == coord
    assert zk["create"] == zk["creator"] == 0
    assert zk["creator_acl"] == [("sasl", realm.principal("client"), 31)]
    assert zk["other_read"] == zk["anon_read"] == int(Err.NOAUTH)
    assert zk["owner_read"] == zk["super_read"] == 0


def _kazoo(port, principal, path="/kazoo-gss", start_timeout=20):
    """kazoo with sasl_options GSSAPI: the ACL id of a node it creates, or what it raised."""
    k = KazooClient(f"localhost:{port}", sasl_options={"mechanism": "GSSAPI", "principal": principal},
                    connection_retry={"max_tries": 0})
    try:
        k.start(start_timeout)
        k.create(path, b"", acl=[make_acl("sasl", principal, all=True)], makepath=True)
        acl = k.get_acls(path)[0][0]
        k.delete(path)
        return f"{acl.id.scheme}:{acl.id.id}"
    except Exception as e:  # noqa: BLE001  (the type is what is compared)
        return type(e).__name__
    finally:
        k.stop()
        k.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_kazoo_sasl_options_gssapi(realm, krb_pair):
    """A principal with a key in the client keytab logs in; one without fails in the client before
    any token is sent (kazoo 2.11 does not catch pykerberos' GSSError there: its connection thread
    dies; whether start() times out first or a request ends in ConnectionLoss is a race in kazoo,
    so only the failure is compared), the same against both: no token reaches either server."""
    zk, coord = both(krb_pair, lambda port: [_kazoo(port, realm.principal("client")),
                                             _kazoo(port, realm.principal("nobody"), start_timeout=3)])
    assert zk[0] == coord[0] == f"sasl:{realm.principal('client')}"
    assert {zk[1], coord[1]} <= {"ConnectionLoss", "KazooTimeoutError"}


# -- bad input: each answered as ZooKeeper does, only that connection closes, the server serves on --

def _bad(port, tokens_fn):
    """A session sends tokens_fn(client)'s tokens; what came back at each, then a fresh login works."""
    c = session("localhost", port)
    out = [s.shape() for s in tokens_fn(c)]
    c.close_socket()
    ok, _ = raw_login(port, "client")
    out.append(("still serving", ids_of(ok)))
    ok.close_socket()
    return out


def _malformed_first(c):
    return [step(c, b"\x60\x82garbage-not-an-ap-req", check_close=1.0)]


def _nonempty_after_aprep(c):
    g = GssClient("client")
    s1 = step(c, g.first(), check_close=0)
    g.finish(s1.token)
    return [s1, step(c, b"unexpected", check_close=1.0)]


def _layer_reply(payload_fn):
    def run(c):
        g = GssClient("client")
        s1 = step(c, g.first(), check_close=0)
        g.finish(s1.token)
        s2 = step(c, b"", check_close=0)
        offer = g.offered(s2.token)
        return [s1, s2, step(c, payload_fn(g, offer), check_close=1.0)]
    return run


def _token_after_complete(c):
    gss_login(c, "client")
    return [step(c, b"", check_close=1.0)]


def _wrong_service(c):
    g = GssClient("client", service="zookeeper@otherhost")
    return [step(c, g.first(), check_close=1.0)]


CLOSED_NO_REPLY = (None, True, None, True)     # a JDK runtime exception: closed without a reply
REFUSED = (AUTHFAILED, True, 0, True)         # SaslException: AUTHFAILED, null token, closed
BAD = {   # case: (the session's tokens, what its last one gets)
    "malformed AP-REQ": (_malformed_first, REFUSED),
    "non-empty token after the AP-REP": (_nonempty_after_aprep, REFUSED),
    "layer reply not wrapped": (_layer_reply(lambda g, offer: b"\x01\x01\x00\x00"), REFUSED),
    "integrity-only layer": (_layer_reply(lambda g, offer: g.reply(b"\x02" + offer[1:4])), REFUSED),
    "layer reply of 2 bytes": (_layer_reply(lambda g, offer: g.reply(b"\x01\x00")), CLOSED_NO_REPLY),
    "token after completion": (_token_after_complete, REFUSED),
    "ticket for another service": (_wrong_service, REFUSED),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_tokens(realm, krb_pair, case):
    if case == "ticket for another service":
        try:
            realm.kdc.add_principal("zookeeper/otherhost")
        except RuntimeError as e:
            assert "already exists" in str(e)
    tokens, expected = BAD[case]
    zk, coord = both(krb_pair, lambda port: _bad(port, tokens))
    assert zk == coord
    assert zk[-2] == expected
    assert zk[-1] == ("still serving", [("sasl", realm.principal("client"))])


def test_replayed_exchange(realm, krb_pair):
    """A recorded login replayed on a new connection: refused at its AP-REQ (replay cache)."""
    def run(port):
        sent = []
        c, _ = raw_login(port, "client", record=sent)
        c.close_socket()
        c = session("localhost", port)
        out = [step(c, sent[0], check_close=1.0).shape()]
        c.close_socket()
        return out
    zk, coord = both(krb_pair, run)
    assert zk == coord == [(AUTHFAILED, True, 0, True)]


# -- kerberos.remove*FromPrincipal with sessionRequireClientSASLAuth ----------------------------------

@pytest.fixture(scope="module")
def mapped_pair(realm, tmp_path_factory):
    p = start_krb_pair(realm, tmp_path_factory.mktemp("gss-mapped"),
                       {"kerberos.removeHostFromPrincipal": "true", "kerberos.removeRealmFromPrincipal": "true",
                        "sessionRequireClientSASLAuth": "true"})
    yield p
    p.stop()


def test_remove_host_and_realm_with_sasl_required(realm, mapped_pair):
    def run(port):
        out = {}
        for who in ("kafka/localhost", "client"):
            c, _ = raw_login(port, who)
            out[who] = ids_of(c)
            c.close_socket()
        owner, _ = raw_login(port, "kafka/localhost")
        out["create"] = owner.create("/gss-kafka", b"", [R.ACL(31, R.Id("sasl", "kafka"))]).err
        out["delete"] = owner.delete("/gss-kafka").err
        owner.close_socket()
        anon = session("localhost", port)
        r = anon.exists("/")
        out["unauthenticated"] = (r.err, len(r.body), anon.is_closed_by_peer(2.0))
        anon.close_socket()
        c = session("localhost", port)
        out["failed login"] = [s.shape() for s in _malformed_first(c)]
        c.close_socket()
        return out
    zk, coord = both(mapped_pair, run)
    assert zk == coord
    assert zk["kafka/localhost"] == [("sasl", "kafka")] and zk["client"] == [("sasl", "client")]
    assert zk["create"] == zk["delete"] == 0
    assert zk["unauthenticated"] == (int(Err.SESSIONCLOSEDREQUIRESASLAUTH), 0, True)
    assert zk["failed login"] == [(int(Err.SESSIONCLOSEDREQUIRESASLAUTH), True, 0, True)]


# -- the server's keys: stale at run time, missing or wrong at start ----------------------------------

def test_stale_server_keytab(realm, tmp_path):
    """The server principal gets a new key after both servers started (its keytab now holds the
    old kvno): every GSSAPI login fails with AUTHFAILED, and the servers keep serving."""
    name = "zookeeper/127.0.0.1"
    kt = tmp_path / "stale.keytab"
    try:
        realm.kdc.add_principal(name)
    except RuntimeError as e:   # a rerun on the module's KDC
        if "already exists" not in str(e):
            raise
    # a key no ticket was made for yet: on a rerun the client still holds one for the last key,
    # which would be the key the servers start with
    realm.kdc.rekey(name)
    realm.kdc.export(name, kt)
    pair = start_krb_pair(realm, tmp_path, server=name, keytab=kt)
    try:
        realm.kdc.rekey(name)

        def run(port):
            c = session("127.0.0.1", port)
            s = step(c, GssClient("client", service="zookeeper@127.0.0.1").first(), check_close=1.0)
            c.close_socket()
            c = session("127.0.0.1", port)
            served = c.create("/after-stale-login", b"").err, c.delete("/after-stale-login").err
            c.close_socket()
            return s.shape(), served
        zk, coord = both(pair, run)
        assert zk == coord == (REFUSED, (0, 0))
    finally:
        pair.stop()


@pytest.mark.parametrize("case", ["missing keytab", "keytab without the principal"])
def test_bad_server_keytab_stops_both(realm, tmp_path, case):
    from tests.support.coord_server import CoordProcess
    from tests.support.real_zk import RealZooKeeper
    if case == "missing keytab":
        kt = tmp_path / "absent.keytab"
    else:
        kt = realm.keytab_of("other")
    jaas = write_krb_jaas(tmp_path / "jaas.conf", server=(realm.principal(SERVER), kt))
    props = {**realm.jvm_props(), "java.security.auth.login.config": str(jaas)}
    flags = [f"-D{k}={v}" for k, v in props.items()]
    zk = RealZooKeeper(tmp_path / "zk", extra_cfg={"authProvider.1": SASL_PROVIDER}, jvm_flags=flags)
    coord = CoordProcess(tmp_path / "coord", extra_cfg={"authProvider.1": SASL_PROVIDER},
                         env={"SERVER_JVMFLAGS": " ".join(flags)})
    assert (_starts(zk), _starts(coord)) == (False, False)
    assert str(kt) in coord.log_text(), coord.log_text()[-2000:]


@pytest.mark.slow
def test_expired_ticket(realm, krb_pair, tmp_path):
    """An AP-REQ made with a 5 s ticket, sent once the ticket and the clock skew (10 s, krb5.conf)
    are past: refused with AUTHFAILED by both, the connection closed, the servers serve on."""
    import time
    ccache = tmp_path / "short.ccache"
    realm.kdc.kinit("client", realm.keytab_of("client"), ccache, lifetime="5s")
    import gssapi
    creds = gssapi.Credentials(usage="initiate", store={"ccache": f"FILE:{ccache}"})
    target = gssapi.Name("zookeeper@localhost", gssapi.NameType.hostbased_service)
    tokens = [gssapi.SecurityContext(name=target, creds=creds, usage="initiate").step() for _ in range(2)]
    time.sleep(5 + 10 + 2)

    def run(port, token):
        c = session("localhost", port)
        s = step(c, token, check_close=1.0)
        c.close_socket()
        ok, _ = raw_login(port, "client")
        ids = ids_of(ok)
        ok.close_socket()
        return s.shape(), ids
    zk = run(krb_pair.zk.client_port, tokens[0])
    coord = run(krb_pair.coord.client_port, tokens[1])
    assert zk == coord == (REFUSED, [("sasl", realm.principal("client"))])

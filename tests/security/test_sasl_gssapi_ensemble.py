"""SASL GSSAPI on ensemble members and a principal of a trusted realm, differential: a 3-server coord ensemble and a 3-server real
ZooKeeper 3.8 ensemble, each member with its own service principal and keytab
(zookeeper/m<N>.coord.test@REALM, its own JAAS section chosen by `sasl.serverconfig`), the same
krb5.conf and a real MIT KDC. A client authenticates to a follower (asking for that member's service
ticket, as the Java client does for the host it connected to), creates a znode whose ACL names its
`sasl:` id through that follower, and the ACL holds on every member: the creator reads and writes
through each, an unauthenticated session and another principal get NoAuth on each. With
`kerberos.removeRealmFromPrincipal=true` the id (and the ACL) are the principal without its realm.
A client of a second KDC's realm (OTHER.TEST, cross-realm trust) logs in to a standalone pair and
keeps its whole principal as its id, removeRealmFromPrincipal or not.
"""
from __future__ import annotations

import pytest

from coord.jute import records as R
from coord.jute.codec import decode
from coord.jute.protocol import Err
from tests.security.conftest import SASL_PROVIDER
from tests.security.krb import KRB5_MODULE, gss_login
from tests.security.saslraw import session
from tests.support.ensemble import Ensemble, coord_ensemble_available
from tests.support.real_zk import available as zk_available

pytestmark = [pytest.mark.realzk, pytest.mark.slow]

HOST = "m{sid}.coord.test"
NOAUTH = int(Err.NOAUTH)


def _need(kind: str) -> None:
    import os
    missing = (kind == "coord" and not coord_ensemble_available()) or (kind == "zookeeper" and not zk_available())
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{kind} ensemble members are missing")
        pytest.skip(f"{kind} ensemble members are missing")


@pytest.fixture(scope="module")
def member_jaas(realm):
    """One JAAS file, a Server<N> section per member with its own principal and keytab."""
    out = []
    for sid in (1, 2, 3):
        princ = f"zookeeper/{HOST.format(sid=sid)}"
        kt = realm.dir / f"m{sid}.keytab"
        if not kt.exists():
            try:
                realm.kdc.add_principal(princ, kt)
            except RuntimeError as e:
                if "already exists" not in str(e):
                    raise
                realm.kdc.export(princ, kt)
        out += [f"Server{sid} {{", f"    {KRB5_MODULE} required", "    useKeyTab=true", f'    keyTab="{kt}"',
                "    storeKey=true", "    useTicketCache=false", f'    principal="{realm.principal(princ)}";', "};"]
    path = realm.dir / "ensemble-jaas.conf"
    path.write_text("\n".join(out) + "\n")
    return path


def _login(port: int, sid: int, principal: str):
    c = session("localhost", port)
    steps = gss_login(c, principal, service=f"zookeeper@{HOST.format(sid=sid)}")
    assert steps and all(s.err == 0 for s in steps), [s.shape() for s in steps]
    return c


def _ids(c) -> list[tuple[str, str]]:
    r = c.whoami()
    assert r.err == 0
    return sorted((i.authScheme, i.user) for i in r.value.clientInfo if i.authScheme != "ip")


def _scenario(ens: Ensemble, realm, strip: bool) -> dict:
    leader = ens.leader().sid
    follower = next(s for s in ens.members if s != leader)
    me = realm.principal("client")
    ident = "client" if strip else me
    out = {}
    c = _login(ens.members[follower].client_port, follower, me)
    out["whoami_on_follower"] = _ids(c)
    r = c.call(1, R.CreateRequest("/gss", b"v0", [R.ACL(31, R.Id("sasl", ident))], 0).encode())
    out["create_through_follower"] = r.err
    c.close_socket()
    for sid, m in sorted(ens.members.items()):
        row = {}
        c = _login(m.client_port, sid, me)
        c.sync("/gss")
        g = c.get_data("/gss")
        row["creator_read"] = g.err
        row["creator_write"] = c.call(5, R.SetDataRequest("/gss", f"v{sid}".encode(), -1).encode()).err
        c.close_socket()
        anon = session("127.0.0.1", m.client_port)
        row["anonymous_read"] = anon.get_data("/gss").err
        anon.close_socket()
        other = _login(m.client_port, sid, realm.principal("other"))
        row["other_read"] = other.get_data("/gss").err
        row["other_write"] = other.call(5, R.SetDataRequest("/gss", b"x", -1).encode()).err
        other.close_socket()
        row["anonymous_get_acl"] = _acl(m.client_port, None)
        row["creator_get_acl"] = _acl(m.client_port, (sid, me))
        out.setdefault("members", []).append(row)
    return out


def _acl(port: int, login: tuple[int, str] | None):
    """getACL /gss (3.8 asks READ or ADMIN for it): the error, or the ACL."""
    c = _login(port, *login) if login else session("127.0.0.1", port)
    r = c.call(6, R.GetACLRequest("/gss").encode())
    c.close_socket()
    return r.err if r.err else [(a.perms, a.id.scheme, a.id.id) for a in decode(R.GetACLResponse, r.body)[0].acl]


@pytest.mark.parametrize("strip", [False, True], ids=["full-principal", "removeRealmFromPrincipal"])
def test_gssapi_on_every_member(realm, member_jaas, tmp_path, strip):
    out = {}
    for kind in ("zookeeper", "coord"):
        _need(kind)
        cfg = {"authProvider.1": SASL_PROVIDER}
        if strip:
            cfg["kerberos.removeRealmFromPrincipal"] = "true"
        ens = Ensemble(tmp_path / kind, 3, kind=kind, force_sync=False, extra_cfg=cfg,
                       member_cfg={sid: {"sasl.serverconfig": f"Server{sid}"} for sid in (1, 2, 3)},
                       server_jvmflags=[f"-Djava.security.auth.login.config={member_jaas}",
                                        f"-Djava.security.krb5.conf={realm.kdc.krb5_conf}"])
        try:
            ens.start(wait=120)
            out[kind] = _scenario(ens, realm, strip)
        finally:
            ens.stop()
    ident = "client" if strip else realm.principal("client")
    assert out["zookeeper"] == out["coord"], out
    got = out["coord"]
    assert got["whoami_on_follower"] == [("sasl", ident)]
    assert got["create_through_follower"] == 0
    assert got["members"] == 3 * [{"creator_read": 0, "creator_write": 0, "anonymous_read": NOAUTH,
                                   "other_read": NOAUTH, "other_write": NOAUTH, "anonymous_get_acl": NOAUTH,
                                   "creator_get_acl": [(31, "sasl", ident)]}]


# -- a client principal of another realm (cross-realm trust) ---------------------------------------

OTHER_REALM = "OTHER.TEST"


@pytest.fixture(scope="module")
def other_realm(realm, tmp_path_factory):
    """A second KDC (OTHER.TEST) that the main realm trusts; its `visitor` principal in the clients' keytab."""
    from tests.support.kdc import Kdc
    other = Kdc(tmp_path_factory.mktemp("kdc-other"), realm=OTHER_REALM).start()
    try:
        realm.kdc.trust(other)
        other.add_principal("visitor")
        other.export("visitor", realm.client_keytab)
        yield other
    finally:
        other.stop()


@pytest.mark.parametrize("strip", [False, True], ids=["full-principal", "removeRealmFromPrincipal"])
def test_principal_of_a_trusted_realm(realm, other_realm, tmp_path, strip):
    """visitor@OTHER.TEST logs in through cross-realm trust: the id it gets (ZooKeeper's DEFAULT
    auth_to_local rule matches only the default realm), and a sasl: ACL on that id, on both servers."""
    from tests.security.conftest import start_krb_pair
    props = {"zookeeper.superUser": realm.principal("admin")}
    cfg = {"kerberos.removeRealmFromPrincipal": "true"} if strip else None
    pair = start_krb_pair(realm, tmp_path / "pair", cfg, props)
    visitor = f"visitor@{OTHER_REALM}"
    out = {}
    try:
        for name, _, port in pair.targets:
            c = session("localhost", port)
            steps = gss_login(c, visitor)
            row = {"login": [s.shape() for s in steps]}
            if steps and steps[-1].err == 0 and not steps[-1].closed:
                ids = _ids(c)
                row["ids"] = ids
                r = c.call(1, R.CreateRequest("/visitor", b"v", [R.ACL(31, R.Id(*ids[0]))], 0).encode())
                row["create"] = r.err
                row["own_read"] = c.get_data("/visitor").err
                local = session("localhost", port)
                gss_login(local, realm.principal("client"))
                row["local_client_read"] = local.get_data("/visitor").err
                local.close_socket()
            c.close_socket()
            out[name] = row
    finally:
        pair.stop()
    assert out["zk"] == out["coord"], out
    assert out["coord"]["login"][-1][0] == 0
    # with removeRealmFromPrincipal too: the DEFAULT rule does not match a foreign realm, so
    # ZooKeeper keeps the authorization id, the whole principal
    assert out["coord"]["ids"] == [("sasl", visitor)] and out["coord"]["create"] == 0
    assert out["coord"]["own_read"] == 0 and out["coord"]["local_client_read"] == NOAUTH, out

"""SASL DIGEST-MD5 on the client port, differential: real ZooKeeper 3.8 and coord, same JAAS file.

Every scenario runs against both servers and compares what a client sees: reply error codes, null
or non-null tokens, reply zxids, whether the connection closes, whoAmI identities and ACL checks.
"""
from __future__ import annotations

import re
import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl

from coord.jute import records as R
from coord.jute.protocol import Err
from tests.security.conftest import USERS, start_sasl_pair
from tests.security.saslraw import digest_client, login, session, step

pytestmark = pytest.mark.realzk


def both(pair, fn):
    """fn(host, port) on real ZooKeeper and on coord; the two results."""
    out = {name: fn(host, port) for name, host, port in pair.targets}
    return out["zk"], out["coord"]


def whoami_ids(c):
    r = c.whoami()
    assert r.err == 0
    return [(i.authScheme, i.user) for i in r.value.clientInfo]


def test_login_gives_sasl_identity(sasl_pair):
    def run(host, port):
        c = session(host, port)
        steps = login(c, "jaasuser", USERS["jaasuser"])
        ids = whoami_ids(c)
        c.close_socket()
        return [s.shape() for s in steps], [(s, i) for s, i in ids if s != "ip"]
    zk, coord = both(sasl_pair, run)
    assert zk == coord
    assert zk[1] == [("sasl", "jaasuser")]
    assert [s[0] for s in zk[0]] == [0, 0]   # challenge, then rspauth


def test_super_user_by_sasl(sasl_pair):
    def run(host, port):
        c = session(host, port)
        login(c, "super", USERS["super"])
        ids = whoami_ids(c)
        c.close_socket()
        return [(s, i) for s, i in ids if s != "ip"]
    zk, coord = both(sasl_pair, run)
    assert zk == coord
    assert ("sasl", "super") in zk and ("super", "") in zk


def test_challenge_format(sasl_pair):
    def run(host, port):
        c = session(host, port)
        s = step(c, b"", check_close=0)
        c.close_socket()
        return s
    zk, coord = both(sasl_pair, run)
    pat = rb'realm="zk-sasl-md5",nonce="[A-Za-z0-9+/]{40}",charset=utf-8,algorithm=md5-sess\Z'
    for s in (zk, coord):
        assert re.match(pat, s.token), s.token
    assert zk.shape() == coord.shape()
    assert zk.zxid == 0


def _acl_scenario(host, port):
    """jaasuser creates /sasl-acl readable by itself only; other and an anonymous client are refused;
    CREATOR_ALL (auth) expands to the SASL id; super reads everything."""
    out = {}
    owner = session(host, port)
    login(owner, "jaasuser", USERS["jaasuser"])
    for p in ("/sasl-acl", "/sasl-creator"):
        owner.delete(p)
    r = owner.create("/sasl-acl", b"v", acl=[R.ACL(31, R.Id("sasl", "jaasuser"))])
    out["create"] = r.err
    r = owner.create("/sasl-creator", b"v", acl=[R.ACL(31, R.Id("auth", ""))])
    out["create_auth"] = r.err
    r = owner.get_acl("/sasl-creator")
    out["creator_acl"] = [(a.perms, a.id.scheme, a.id.id) for a in r.value.acl] if r.err == 0 else r.err
    out["owner_read"] = owner.get_data("/sasl-acl").err
    r = owner.create("/sasl-bad", b"v", acl=[R.ACL(31, R.Id("sasl", "a@b@c"))])
    out["invalid_sasl_id"] = r.err
    for name, user in (("other", "other"), ("super", "super")):
        c = session(host, port)
        login(c, user, USERS[user])
        out[f"{name}_read"] = c.get_data("/sasl-acl").err
        c.close_socket()
    anon = session(host, port)
    out["anon_read"] = anon.get_data("/sasl-acl").err
    out["anon_create_auth"] = anon.create("/sasl-anon", b"", acl=[R.ACL(31, R.Id("auth", ""))]).err
    anon.close_socket()
    owner.close_socket()
    return out


def test_acls_with_sasl_ids(sasl_pair):
    zk, coord = both(sasl_pair, _acl_scenario)
    assert zk == coord
    assert zk["owner_read"] == 0 and zk["other_read"] == Err.NOAUTH and zk["super_read"] == 0
    assert zk["creator_acl"] == [(31, "sasl", "jaasuser")]
    assert zk["anon_create_auth"] == Err.INVALIDACL


@pytest.mark.parametrize("user,password", [("jaasuser", "wrong"), ("nobody", "x")])
def test_wrong_password_or_unknown_user(sasl_pair, user, password):
    def run(host, port):
        c = session(host, port)
        steps = login(c, user, password)
        closed = c.is_closed_by_peer(3.0)
        c.close_socket()
        return [s.shape() for s in steps], closed
    zk, coord = both(sasl_pair, run)
    assert zk == coord
    assert zk[0][-1][0] == Err.AUTHFAILED and zk[0][-1][1] and zk[1]


def _response_for(challenge: bytes, user: str, password: str, **edit) -> bytes:
    """A pure-sasl digest-response to `challenge`, with directives replaced or added by `edit`."""
    cli = digest_client(user, password)
    cli.process(None)
    resp = cli.process(challenge)
    if not edit:
        return resp
    parts = [p.split(b"=", 1) for p in resp.split(b",")]
    d = {k.decode(): v for k, v in parts}
    for k, v in edit.items():
        k = k.replace("_", "-")
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return b",".join(k.encode() + b"=" + v for k, v in d.items())


MALFORMED = {
    "initial_response": lambda ch: None,
    "garbage": lambda ch: b"\x00\xff garbage ==,,",
    "unclosed_quote": lambda ch: b'username="jaasuser',
    "duplicate_username": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"]) + b',username="x"',
    "bad_nc": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"], nc=b"zz"),
    "nc_2": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"], nc=b"00000002"),
    "bad_maxbuf": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"], maxbuf=b"big"),
    "wrong_realm": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"], realm=b'"other"'),
    "no_cnonce": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"], cnonce=None),
    "wrong_uri": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"], digest_uri=b'"zookeeper/x"'),
    "upper_uri": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"],
                                          digest_uri=b'"ZOOKEEPER/ZK-SASL-MD5"'),
    "qop_conf": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"], qop=b"auth-conf"),
    "charset_upper": lambda ch: _response_for(ch, "jaasuser", USERS["jaasuser"], charset=b"UTF-8"),
    "too_long": lambda ch: b"a=" + b"b" * 5000,
    "empty_second": lambda ch: b"",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_tokens(sasl_pair, case):
    def run(host, port):
        c = session(host, port)
        if case == "initial_response":
            s = step(c, b"username=x")
            c.close_socket()
            return [s.shape()]
        first = step(c, b"", check_close=0)
        s = step(c, MALFORMED[case](first.token), check_close=2.0)
        out = [first.shape(), s.shape()]
        if not s.closed and s.err == 0:
            out.append([i for i in whoami_ids(c) if i[0] != "ip"])
        c.close_socket()
        return out
    zk, coord = both(sasl_pair, run)
    assert zk == coord


def test_replayed_response(sasl_pair):
    """A digest-response captured from one connection is refused on another (new nonce) and on its
    own connection once the exchange is complete."""
    def run(host, port):
        a = session(host, port)
        cli = digest_client("jaasuser", USERS["jaasuser"])
        cli.process(None)
        ch = step(a, b"", check_close=0).token
        resp = cli.process(ch)
        ok = step(a, resp, check_close=0)
        again = step(a, resp, check_close=2.0)
        b = session(host, port)
        step(b, b"", check_close=0)
        replay = step(b, resp, check_close=2.0)
        a.close_socket()
        b.close_socket()
        return ok.shape(), again.shape(), replay.shape()
    zk, coord = both(sasl_pair, run)
    assert zk == coord
    assert zk[1][0] == Err.AUTHFAILED and zk[2][0] == Err.AUTHFAILED


def _kazoo_login(host, port, user, password):
    """kazoo with sasl_options: the SASL id on a node it creates, or the name of what it raised
    (start() returns once the session is up, before SASL; a failed SASL shows on the next call)."""
    k = KazooClient(f"{host}:{port}", sasl_options={"mechanism": "DIGEST-MD5", "username": user,
                                                     "password": password}, connection_retry={"max_tries": 0})
    try:
        k.start(15)
        k.create("/kazoo-sasl", b"", acl=[make_acl("sasl", user, all=True)], makepath=True)
        acl = k.get_acls("/kazoo-sasl")[0][0]
        k.delete("/kazoo-sasl")
        return f"{acl.id.scheme}:{acl.id.id}"
    except Exception as e:  # noqa: BLE001  (the type is what is compared)
        return type(e).__name__
    finally:
        k.stop()
        k.close()


def test_kazoo_sasl_options(sasl_pair):
    zk, coord = both(sasl_pair, lambda h, p: [_kazoo_login(h, p, "jaasuser", USERS["jaasuser"]),
                                              _kazoo_login(h, p, "jaasuser", "wrong")])
    assert zk == coord
    assert zk[0] == "sasl:jaasuser" and zk[1] != zk[0]


def test_no_sasl_server(tmp_path):
    """No JAAS Server section: ZooKeeper answers each token with err 0 and a null token; coord does
    the same for the first, and refuses a repeat (kazoo would otherwise loop for ever)."""
    pair = start_sasl_pair(tmp_path, None)
    try:
        def run(host, port):
            c = session(host, port)
            first = step(c, b"", check_close=0.5)
            second = step(c, b"", check_close=2.0)
            c.close_socket()
            return first.shape(), second.shape()
        zk, coord = both(pair, run)
        assert zk[0] == coord[0] == (0, True, 0, False)
        assert zk[1] == (0, True, 0, False)
        assert coord[1] == (Err.AUTHFAILED, True, 0, True)
        # kazoo against coord ends with AuthFailedError instead of spinning.
        result = {}
        t = threading.Thread(target=lambda: result.setdefault(
            "r", _kazoo_login("127.0.0.1", pair.coord.client_port, "jaasuser", "x")), daemon=True)
        t0 = time.monotonic()
        t.start()
        t.join(30)
        assert not t.is_alive(), "kazoo still looping in SASL against coord"
        assert result["r"] in ("AuthFailedError", "ConnectionClosedError"), result
        assert time.monotonic() - t0 < 30
    finally:
        pair.stop()


def _starts(server) -> bool:
    try:
        server.start(wait=30)
    except (RuntimeError, TimeoutError):
        return False
    server.stop()
    return True


@pytest.mark.parametrize("case", ["unparsable", "missing", "no_server_section"])
def test_jaas_file_problems(tmp_path, case):
    """A JAAS file that cannot be read or parsed stops both servers at start; a file without a
    Server section leaves SASL off on both (the first token gets err 0 and a null token)."""
    jaas = tmp_path / "jaas.conf"
    if case == "unparsable":
        jaas.write_text('Server { org.apache.zookeeper.server.auth.DigestLoginModule required '
                        'user_kafka/host@REALM="pw"; };\n')
    elif case == "no_server_section":
        jaas.write_text('Client { org.apache.zookeeper.server.auth.DigestLoginModule required '
                        'username="a" password="b"; };\n')
    if case == "no_server_section":
        pair = start_sasl_pair(tmp_path / "s", jaas)
        try:
            def run(host, port):
                c = session(host, port)
                s = step(c, b"", check_close=0.5)
                c.close_socket()
                return s.shape()
            zk, coord = both(pair, run)
            assert zk == coord == (0, True, 0, False)
        finally:
            pair.stop()
        return
    flags = [f"-Djava.security.auth.login.config={jaas}"]
    from tests.security.conftest import SASL_PROVIDER
    from tests.support.coord_server import CoordProcess
    from tests.support.real_zk import RealZooKeeper
    zk = RealZooKeeper(tmp_path / "zk", jvm_flags=flags, extra_cfg={"authProvider.1": SASL_PROVIDER})
    coord = CoordProcess(tmp_path / "coord", env={"SERVER_JVMFLAGS": " ".join(flags)},
                         extra_cfg={"authProvider.1": SASL_PROVIDER})
    assert (_starts(zk), _starts(coord)) == (False, False)
    assert str(jaas) in coord.log_text()

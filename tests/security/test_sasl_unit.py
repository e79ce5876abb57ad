"""The pure SASL pieces: DIGEST-MD5 arithmetic against published vectors, the state machine under
fuzzing, principal mapping, the JAAS parser and the zoo.cfg / JVM-flag keys."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from puresasl.client import SASLClient

from coord.aio import zoocfg
from coord.aio.jaas import JaasError, parse, server_users
from coord.core import digest_md5
from coord.core.digest_md5 import response_value
from coord.core.sasl import AUTHFAILED, SaslConfig, SaslExchange, authorized_id, kerberos_valid

ZK_URI = b"zookeeper/zk-sasl-md5"
NONCE = b"Q0FGRUJBQkVDQUZFQkFCRUNBRkVCQUJFQ0FGRUJB"
CNONCE = b"Y2xpZW50bm9uY2VjbGllbnRub25jZWNsaWVudG5v"


def test_rfc2831_example():
    assert response_value("AUTHENTICATE", b"imap/elwood.innosoft.com", "chris", "elwood.innosoft.com",
                          "secret", b"OA6MG9tEQGm2hh", b"OA6MHXh6VqTrRk", None) \
        == b"d388dad90d4bbd760a152321f2143af7"
    assert response_value("", b"imap/elwood.innosoft.com", "chris", "elwood.innosoft.com", "secret",
                          b"OA6MG9tEQGm2hh", b"OA6MHXh6VqTrRk", None) == b"ea40f60335c427b5527b84dbabcdfffd"


@pytest.mark.parametrize("authzid,response,rspauth", [
    (b"kafka", b"8bd21f026ee3e66a576fce51389c5220", b"eea860773b016b605cedd8fe5cf8864f"),
    (None, b"4e819c4ab2a8057b7e841e5449fe53ed", b"2c40792c31f2f4bfcbf5141c6fb8e56b"),
])
def test_zookeeper_vectors(authzid, response, rspauth):
    args = (ZK_URI, "kafka", "zk-sasl-md5", "kafka-secret", NONCE, CNONCE, authzid)
    assert response_value("AUTHENTICATE", *args) == response
    assert response_value("", *args) == rspauth


def _cfg(**kw) -> SaslConfig:
    nonces = iter(range(1 << 30))
    return SaslConfig(users={"alice": "pw", "super": "s"}, super_users=frozenset({"super"}),
                      nonce=lambda: base64.b64encode(next(nonces).to_bytes(30, "big")), **kw)


def _pure_sasl_login(ex: SaslExchange, user: str, password: str):
    cli = SASLClient("zk-sasl-md5", "zookeeper", mechanism="DIGEST-MD5", username=user, password=password)
    challenge = None
    replies = []
    while not cli.complete:
        resp = cli.process(challenge)
        if cli.complete and not resp:
            break
        r = ex.respond(resp or b"")
        replies.append(r)
        if r.err or r.token is None:
            break
        challenge = r.token
    return replies


def test_exchange_success_and_super():
    r = _pure_sasl_login(SaslExchange(_cfg()), "alice", "pw")
    assert [x.err for x in r] == [0, 0] and r[-1].ids == (("sasl", "alice"),)
    r = _pure_sasl_login(SaslExchange(_cfg()), "super", "s")
    assert r[-1].ids == (("sasl", "super"), ("super", ""))
    r = _pure_sasl_login(SaslExchange(_cfg(super_password="override")), "super", "override")
    assert r[-1].ids[0] == ("sasl", "super")


def test_exchange_failures_close():
    r = _pure_sasl_login(SaslExchange(_cfg()), "alice", "nope")
    assert r[-1].err == AUTHFAILED and r[-1].close and r[-1].token is None and not r[-1].ids
    r = _pure_sasl_login(SaslExchange(_cfg(allow_failed_clients=True)), "alice", "nope")
    assert r[-1].err == 0 and not r[-1].close and not r[-1].ids


def test_unconfigured_answers_once_then_refuses():
    ex = SaslExchange(None)
    first, second = ex.respond(b""), ex.respond(b"")
    assert (first.err, first.token, first.close) == (0, None, False)
    assert (second.err, second.token, second.close) == (AUTHFAILED, None, True)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=600) | st.sampled_from([
    b"", b'username="alice"', b"nc=zz", b"maxbuf=x", b'realm="zk-sasl-md5",nonce="', b"a=b,a=c",
    b"rspauth=", b"\\", b'"', b"=" * 10]), min_size=1, max_size=5))
def test_fuzz_state_machine(tokens):
    """Any token sequence gets a well-formed reply or a close, never an exception, never an
    identity without the password, and nothing after a close is accepted."""
    ex = SaslExchange(_cfg())
    for tok in tokens:
        r = ex.respond(tok)
        assert r.err in (0, AUTHFAILED)
        assert r.token is None or isinstance(r.token, bytes)
        assert r.ids == ()
        if r.close:
            assert ex.respond(b"").err == AUTHFAILED
            break


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=20).filter(lambda u: u not in ("alice", "super")),
       st.text(max_size=20))
def test_fuzz_only_right_password_passes(user, password):
    replies = _pure_sasl_login(SaslExchange(_cfg()), user, password)
    assert replies[-1].err == AUTHFAILED and not replies[-1].ids


def test_principal_mapping():
    cfg = SaslConfig(default_realm="EXAMPLE.COM")
    assert authorized_id(cfg, "kafka/b1.example.com@EXAMPLE.COM", "x") == "kafka/b1.example.com@EXAMPLE.COM"
    cfg = SaslConfig(default_realm="EXAMPLE.COM", remove_host=True)
    assert authorized_id(cfg, "kafka/b1.example.com@EXAMPLE.COM", "x") == "kafka@EXAMPLE.COM"
    cfg = SaslConfig(default_realm="EXAMPLE.COM", remove_host=True, remove_realm=True)
    assert authorized_id(cfg, "kafka/b1.example.com@EXAMPLE.COM", "x") == "kafka"
    assert authorized_id(cfg, "plain", "x") == "plain"
    # A realm no auth_to_local rule maps: the AuthorizeCallback keeps the client's authzid.
    assert authorized_id(cfg, "kafka@OTHER.ORG", "kafka@OTHER.ORG") == "kafka@OTHER.ORG"
    assert kerberos_valid("a/b@C") and kerberos_valid("plain") and not kerberos_valid("a@b@c")


def test_jaas_parse_errors_name_the_line(tmp_path):
    with pytest.raises(JaasError, match="line 3"):
        parse("Server {\n  m required\n  user_a=123;\n};\n")
    f = tmp_path / "j.conf"
    f.write_text("Server { m required user_a=\"x\"; };")
    assert server_users(str(f), None) == {"a": "x"}
    assert server_users(str(f), "Other") is None
    with pytest.raises(JaasError, match="cannot read"):
        server_users(str(tmp_path / "none"), None)


def _write(tmp_path, text):
    p = tmp_path / "zoo.cfg"
    p.write_text(f"dataDir={tmp_path}/data\nclientPort=2181\n" + text)
    return p


def test_zoocfg_keys_and_jvm_flags(tmp_path, monkeypatch):
    jaas = tmp_path / "jaas.conf"
    jaas.write_text('Server { m required user_bob="pw"; };')
    monkeypatch.setenv("SERVER_JVMFLAGS", f"-Xmx1g -Djava.security.auth.login.config={jaas} "
                                          "-Dzookeeper.superUser=bob -Dzookeeper.allowSaslFailedClients=true")
    monkeypatch.setenv("JVMFLAGS", "-Dzookeeper.allowSaslFailedClients=false")
    cfg = zoocfg.load(_write(tmp_path, "authProvider.1=org.apache.zookeeper.server.auth."
                                       "SASLAuthenticationProvider\nkerberos.removeHostFromPrincipal=true\n"))
    assert cfg.sasl_users == {"bob": "pw"}
    assert cfg.sasl_super_users == {"superUser": "bob"}
    assert cfg.allow_sasl_failed_clients is False      # JVMFLAGS comes last on zkServer.sh's line
    assert cfg.kerberos_remove_host and not cfg.kerberos_remove_realm


@pytest.mark.parametrize("line,needle", [
    ("kerberos.removeRealmFromPrincipal=yes", "zoo.cfg:3"),
    ("authProvider.1=com.example.Nope", "zoo.cfg:3"),
    ("java.security.auth.login.config=/nonexistent/jaas.conf", "/nonexistent/jaas.conf"),
])
def test_zoocfg_bad_values_fail_naming_the_line(tmp_path, monkeypatch, line, needle):
    monkeypatch.delenv("SERVER_JVMFLAGS", raising=False)
    monkeypatch.delenv("JVMFLAGS", raising=False)
    with pytest.raises(zoocfg.ConfigError, match=needle):
        zoocfg.load(_write(tmp_path, line + "\n"))


def test_bad_jvm_flag_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVER_JVMFLAGS", "-Dzookeeper.kerberos.removeHostFromPrincipal=TRUE")
    with pytest.raises(zoocfg.ConfigError, match="SERVER_JVMFLAGS"):
        zoocfg.load(_write(tmp_path, ""))


_PIECES = [b"username", b"USERNAME", b"realm", b"nonce", b"cnonce", b"x-unknown", b"qop", b"=", b"=", b'"',
           b'"', b",", b",", b" ", b"\t", b"\\", b"abc", b"z=z", b"\xc3\xa9", b"", b'"zk-sasl-md5"']


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14) | st.binary(max_size=80))
def test_fast_directive_parse_matches_the_exact_parser(parts):
    """The one-regex parse of a plain digest-response gives what the byte-wise parser (the JDK's
    rules) gives, or declines; so whitespace, escapes, repeats and errors stay the JDK's."""
    buf = parts if isinstance(parts, bytes) else b"".join(parts)
    fast = digest_md5._parse_plain(buf)
    try:
        exact = digest_md5._parse_directives(buf)
    except digest_md5.SaslFailure:
        assert fast is None
        return
    assert fast is None or fast == exact
    assert digest_md5.parse_directives(buf) == exact


def test_fast_directive_parse_takes_what_clients_send():
    """pure-sasl's and the Java client's digest-responses take the fast path."""
    py = (b'username="jaasuser",realm="zk-sasl-md5",nonce="' + NONCE + b'",cnonce="' + CNONCE
          + b'",nc=00000001,qop=auth,digest-uri="zookeeper/zk-sasl-md5",response=4e819c4ab2a8057b7e841e5449fe53ed')
    java = (b'charset=utf-8,username="kafka",realm="zk-sasl-md5",nonce="' + NONCE + b'",nc=00000001,cnonce="'
            + CNONCE + b'",digest-uri="zookeeper/zk-sasl-md5",maxbuf=65536,response=4e819c4ab2a8057b7e8,qop=auth')
    for buf in (py, java):
        assert digest_md5._parse_plain(buf) == digest_md5._parse_directives(buf)
        assert digest_md5._parse_plain(buf)["nonce"] == NONCE


def test_nonce_pool_gives_fresh_jdk_shaped_nonces():
    from coord.aio.nonces import NoncePool
    pool = NoncePool(batch=4)
    got = [pool() for _ in range(10)]   # across two refills
    assert len(set(got)) == 10
    for n in got:
        assert len(n) == 40 and len(base64.b64decode(n, validate=True)) == 30

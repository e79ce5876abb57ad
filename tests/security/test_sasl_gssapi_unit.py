"""SASL GSSAPI in one process: coord's exchange (coord.core.sasl + gss_krb5) on a real MIT acceptor
(coord.aio.gss) and the realm's KDC, no servers. The exchange under fuzzing at each stage, the JAAS
Krb5LoginModule options, the krb5.conf default realm, the replay cache."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coord.aio.gss import Acceptors, ReplayCache, default_realm
from coord.aio.jaas import JaasError, KerberosLogin, kerberos_login, parse
from coord.core.gss_krb5 import GssFailure
from coord.core.sasl import AUTHFAILED, SaslConfig, SaslExchange
from tests.security.krb import SERVER, GssClient

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def acceptors(realm):
    return Acceptors(KerberosLogin(realm.principal(SERVER), str(realm.server_keytab)), str(realm.kdc.krb5_conf))


def _exchange(realm, acceptors, **kw):
    return SaslExchange(SaslConfig(gss=acceptors, default_realm=realm.kdc.realm, **kw))


def _to_stage(ex, stage: int):
    """Run a real client's exchange up to `stage` (0: nothing sent; 1: after the AP-REP; 2: after
    the layer offer); the client, for stage 2's wrap."""
    cli = GssClient("client")
    if stage >= 1:
        r = ex.respond(cli.first())
        cli.finish(r.token)
    if stage >= 2:
        r = ex.respond(b"")
        cli.offered(r.token)
    return cli


def test_in_process_login(realm, acceptors):
    ex = _exchange(realm, acceptors, remove_realm=True)
    cli = GssClient("kafka/localhost")
    r1 = ex.respond(cli.first())
    cli.finish(r1.token)
    r2 = ex.respond(b"")
    offer = cli.offered(r2.token)
    assert offer == b"\x01\x01\x00\x00"                     # no security layer, 65536 bytes
    r3 = ex.respond(cli.reply(b"\x01" + offer[1:]))
    assert (r1.err, r2.err, r3.err, r3.token, r3.close) == (0, 0, 0, None, False)
    assert r3.ids == (("sasl", "kafka/localhost"),)


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_fuzzed_token_at_each_stage(realm, acceptors, stage):
    @FUZZ
    @given(st.binary(max_size=300))
    def run(token):
        ex = _exchange(realm, acceptors)
        _to_stage(ex, stage)
        r = ex.respond(token)
        if r.err == 0 and not r.close:   # only an exchange that goes on may answer err 0
            assert stage == 1 and token == b"" or stage == 0 and r.token is not None
        else:
            assert r.close and (r.err == AUTHFAILED or not r.reply)
            assert r.ids == ()
    run()


def test_replay_cache_window():
    now = [0.0]
    rc = ReplayCache(300.0, clock=lambda: now[0])
    rc.check(b"ap-req")
    with pytest.raises(GssFailure, match="replay"):
        rc.check(b"ap-req")
    now[0] = 301.0
    rc.check(b"ap-req")                                       # outside the clock skew: a new request


def test_default_realm(tmp_path):
    f = tmp_path / "krb5.conf"
    f.write_text("[realms]\n default_realm = NOT.THIS\n[libdefaults]\n  # c\n  default_realm = EXAMPLE.COM ; x\n")
    assert default_realm(str(f)) == "EXAMPLE.COM"
    assert default_realm(str(tmp_path / "absent")) == ""


def _jaas(options: str) -> list:
    return parse("Server { com.sun.security.auth.module.Krb5LoginModule required " + options + "; };")["Server"]


@pytest.mark.parametrize("options,error", [
    ('useKeyTab=true storeKey=true keyTab="/k"', "needs principal"),
    ('useKeyTab=true storeKey=true keyTab="/k" principal="zookeeper@R"', "<service>/<host>"),
    ('storeKey=true keyTab="/k" principal="zookeeper/h@R"', "useKeyTab=true"),
    ('useKeyTab=true keyTab="/k" principal="zookeeper/h@R"', "storeKey=true"),
])
def test_kerberos_login_options(options, error):
    with pytest.raises(JaasError, match=error):
        kerberos_login(_jaas(options))


def test_kerberos_login_parsed():
    got = kerberos_login(_jaas('useKeyTab=TRUE storeKey=true keyTab="/etc/zk.keytab" principal="zookeeper/h@R"'))
    assert got == KerberosLogin("zookeeper/h@R", "/etc/zk.keytab")
    assert kerberos_login(parse('Server { org.apache.zookeeper.server.auth.DigestLoginModule required '
                                'user_a="b"; };')["Server"]) is None


def test_principal_without_realm(realm):
    """principal="zookeeper/host" (the admin guide's example has no realm): krb5.conf's default realm."""
    acc = Acceptors(KerberosLogin(SERVER, str(realm.server_keytab)), str(realm.kdc.krb5_conf))
    cli2 = GssClient("client")
    ex2 = _exchange(realm, acc)
    r = ex2.respond(cli2.first())
    cli2.finish(r.token)
    offer = cli2.offered(ex2.respond(b"").token)
    assert ex2.respond(cli2.reply(b"\x01" + offer[1:])).ids == (("sasl", realm.principal("client")),)

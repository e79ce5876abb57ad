"""The ZooKeeper peer link as ZooKeeper configures it (issue 18), coord's observer and, as the
reference, a real ZooKeeper observer in the same harness, on a real 3-server ZooKeeper 3.8 ensemble:
- quorum TLS (sslQuorum=true, ssl.quorum.* key and trust stores, mutual, hostname verification on):
  the observer dials both ZooKeeper ports with TLS; it syncs, serves, and its tree digest equals the
  leader's. An observer without the trust store's certificate is refused.
- quorum SASL (quorum.auth.enableSasl, learner/serverRequireSasl, DIGEST-MD5 from the JAAS sections
  QuorumServer / QuorumLearner): the observer authenticates on the election and quorum ports and
  serves; with a wrong password it is refused.
- multi-address server lines: the observer falls through a dead first address to the next.
- local sessions: an observer's client on a local session, upgraded by its first ephemeral."""
from __future__ import annotations

import pytest

from tests.security.certs import PASSWORD, Pki
from tests.support.zk_observer import KINDS, ObservedEnsemble
from tests.zkpeer.test_zk_ensemble_observer import _started, client, digests_equal, _stop_clients  # noqa: F401

pytestmark = pytest.mark.realzk
# Each case starts a real 3-server ensemble: coord's own positive cases run by default; the ZooKeeper
# observer's (the reference) and the refusals run with the slow tests.
KIND_PARAMS = [pytest.param("coord"), pytest.param("zookeeper", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def _keys(pki, who: str = "server") -> dict:
    return {"sslQuorum": "true",
            "ssl.quorum.keyStore.location": str(pki.key_store(who, "JKS")),
            "ssl.quorum.keyStore.password": PASSWORD,
            "ssl.quorum.trustStore.location": str(pki.trust_store("JKS")),
            "ssl.quorum.trustStore.password": PASSWORD}


def _observer_serves(obs: ObservedEnsemble, name: str) -> None:
    """With /<name> written on the voters: the observer syncs, a write through it commits (a voter
    reads it after a sync), it reads /<name>, and its tree digest equals the ZooKeeper leader's."""
    c = client(obs.voters.connect_string)
    obs.start_observer(wait=90)
    via = client(obs.observer_connect)
    via.create(f"/{name}-through-observer", b"o")
    c.sync("/")
    assert c.get(f"/{name}-through-observer")[0] == b"o" and via.get(f"/{name}")[0] == b"m"
    ours, theirs = digests_equal(obs, obs.voters.leader().connect_string)
    assert ours == theirs


@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_observer_on_a_tls_quorum(kind, tmp_path, pki):
    keys = _keys(pki)
    obs = ObservedEnsemble(tmp_path, kind, voter_cfg=keys, observer_cfg=keys)
    obs.start()
    try:
        c = client(obs.voters.connect_string)
        c.create("/tls", b"m")
        for i in range(50):
            c.create(f"/tls/n{i}", b"t%d" % i)
        _observer_serves(obs, "tls")
        if kind == "coord":
            assert "Using TLS encrypted quorum communication" in obs.observer_log()
    finally:
        obs.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_observer_with_an_untrusted_certificate_is_refused(kind, tmp_path, pki):
    keys = _keys(pki)
    rogue = dict(keys, **{"ssl.quorum.keyStore.location": str(pki.key_store("rogue", "JKS"))})
    obs = ObservedEnsemble(tmp_path, kind, voter_cfg=keys, observer_cfg=rogue)
    obs.start()
    try:
        with pytest.raises(TimeoutError):
            obs.start_observer(wait=15)
    finally:
        obs.stop()


JAAS = """QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_learner="learner-secret";
};
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="learner"
    password="%s";
};
"""
SASL_KEYS = {"quorum.auth.enableSasl": "true", "quorum.auth.learnerRequireSasl": "true",
             "quorum.auth.serverRequireSasl": "true", "quorum.cnxn.threads.size": "20"}


def sasl_ensemble(tmp_path, kind: str, learner_password: str) -> ObservedEnsemble:
    good = tmp_path / "jaas.conf"
    good.write_text(JAAS % "learner-secret")
    mine = tmp_path / "observer-jaas.conf"
    mine.write_text(JAAS % learner_password)
    flag = f"-Djava.security.auth.login.config={good}"
    ocfg = dict(SASL_KEYS)
    if kind == "coord":
        ocfg["java.security.auth.login.config"] = str(mine)
    obs = ObservedEnsemble(tmp_path, kind, voter_cfg=SASL_KEYS, observer_cfg=ocfg,
                           observer_jvm_flags=[f"-Djava.security.auth.login.config={mine}"])
    for m in obs.voters.members:
        m.jvm_flags.append(flag)
    return obs


@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_observer_on_a_sasl_quorum(kind, tmp_path):
    obs = sasl_ensemble(tmp_path, kind, "learner-secret")
    obs.start()
    try:
        client(obs.voters.connect_string).create("/sasl", b"m")
        _observer_serves(obs, "sasl")
        if kind == "coord":
            assert "quorum SASL (DIGEST-MD5) with ZooKeeper server" in obs.observer_log()
    finally:
        obs.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_observer_with_a_wrong_quorum_password_is_refused(kind, tmp_path):
    obs = sasl_ensemble(tmp_path, kind, "not-the-secret")
    obs.start()
    try:
        with pytest.raises(TimeoutError):
            obs.start_observer(wait=15)
        if kind == "coord":
            assert "quorum auth" in obs.observer_log() or "quorum SASL" in obs.observer_log()
    finally:
        obs.stop()


# -- multi-address server lines (ZooKeeper 3.6+: server.N=a:q:e|b:q:e) --------------------------------------
@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_observer_dials_the_next_address_of_a_multi_address_line(kind, tmp_path):
    """The observer's zoo.cfg names every voter by two addresses, the first of which cannot be reached
    (0.0.0.1: the kernel refuses to dial it, no packet leaves): it must use the second for both the
    election and the quorum port,
    as ZooKeeper's own observer does (it picks a reachable address; multi-address lines need
    zookeeper.multiAddress.enabled there, a system property). A dead port on a reachable host is not
    such a case: ZooKeeper may pick that address and keep failing (seen once in two runs)."""
    from tests.support.real_zk import free_port
    obs = ObservedEnsemble(tmp_path, kind, observer_jvm_flags=["-Dzookeeper.multiAddress.enabled=true"])
    obs.start()
    try:
        for sid in (1, 2, 3):     # the observer's view only: the voters' own zoo.cfg are written already
            obs.voters.servers[sid] = f"0.0.0.1:{free_port()}:{free_port()}|{obs.voters.servers[sid]}"
        client(obs.voters.connect_string).create("/multi", b"m")
        _observer_serves(obs, "multi")
    finally:
        obs.stop()


def test_multi_address_line_is_read_and_written_back():
    from coord.core.quorumserver import parse_server_spec
    q = parse_server_spec(1, "127.0.0.1:2888:3888|127.0.0.2:2889:3889:participant;2181")
    assert q.addresses() == [("127.0.0.1", 2888, 3888), ("127.0.0.2", 2889, 3889)]
    assert parse_server_spec(1, q.spec()) == q
    with pytest.raises(ValueError, match="addresses separated by"):
        parse_server_spec(1, "127.0.0.1:2888:3888|127.0.0.2:2889")


def _global_sessions(obs: ObservedEnsemble) -> int:
    """The ZooKeeper leader's count of global sessions (mntr zk_global_sessions)."""
    from tests.support.real_zk import four_letter
    leader = obs.voters.leader()
    out = four_letter("127.0.0.1", leader.client_port, "mntr", 2.0)
    rows = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    return int(rows["zk_global_sessions"])


# -- local sessions (localSessionsEnabled, localSessionsUpgradingEnabled) -----------------------------------
@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_local_sessions_on_the_observer(kind, tmp_path):
    """With local sessions on (voters and observer alike), a client of the observer reads and writes
    on a local session; its first ephemeral upgrades it to a global one, which the ZooKeeper leader
    then knows (the ephemeral is seen from a voter, owned by that session) and expires or closes
    with the client: closing it removes the ephemeral everywhere."""
    keys = {"localSessionsEnabled": "true", "localSessionsUpgradingEnabled": "true"}
    obs = ObservedEnsemble(tmp_path, kind, voter_cfg=keys, observer_cfg=keys)
    obs.start()
    try:
        c = client(obs.voters.connect_string)
        c.create("/local", b"l")
        obs.start_observer(wait=90)
        via = client(obs.observer_connect)
        assert via.get("/local")[0] == b"l"
        via.create("/local/persistent", b"p")
        c.sync("/")
        before = _global_sessions(obs)
        via.create("/local/eph", b"e", ephemeral=True)
        sid = via.client_id[0]
        c.sync("/")
        assert _global_sessions(obs) == before + 1, "the ephemeral did not upgrade a local session"
        assert c.exists("/local/persistent") is not None
        st = c.exists("/local/eph")
        assert st is not None and st.ephemeralOwner == sid
        via.stop()
        via.close()
        _started.remove(via)
        c.sync("/")
        assert c.exists("/local/eph") is None
    finally:
        obs.stop()

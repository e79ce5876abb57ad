"""The ZooKeeper peer link secured as ZooKeeper secures it (issue 18), coord's observer and, as the
reference, a real ZooKeeper observer in the same harness: a real 3-server ZooKeeper 3.8 ensemble
with quorum TLS (sslQuorum=true, ssl.quorum.* key and trust stores, mutual, hostname verification
on), the observer dialling both ZooKeeper ports with TLS; it syncs, serves, and its tree digest
equals the leader's. An observer without the trust store's certificate is refused."""
from __future__ import annotations

import pytest

from tests.security.certs import PASSWORD, Pki
from tests.support.zk_observer import KINDS, ObservedEnsemble
from tests.zkpeer.test_zk_ensemble_observer import client, digests_equal, _stop_clients  # noqa: F401

pytestmark = pytest.mark.realzk


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


def _keys(pki, who: str = "server") -> dict:
    return {"sslQuorum": "true",
            "ssl.quorum.keyStore.location": str(pki.key_store(who, "JKS")),
            "ssl.quorum.keyStore.password": PASSWORD,
            "ssl.quorum.trustStore.location": str(pki.trust_store("JKS")),
            "ssl.quorum.trustStore.password": PASSWORD}


@pytest.mark.parametrize("kind", KINDS)
def test_observer_on_a_tls_quorum(kind, tmp_path, pki):
    keys = _keys(pki)
    obs = ObservedEnsemble(tmp_path, kind, voter_cfg=keys, observer_cfg=keys)
    obs.start()
    try:
        c = client(obs.voters.connect_string)
        c.ensure_path("/tls")
        for i in range(50):
            c.create(f"/tls/n{i}", b"t%d" % i)
        obs.start_observer(wait=90)
        via = client(obs.observer_connect)
        via.create("/tls/through-observer", b"o")
        c.sync("/")
        assert c.get("/tls/through-observer")[0] == b"o"
        ours, theirs = digests_equal(obs, obs.voters.leader().connect_string)
        assert ours == theirs
        if kind == "coord":
            assert "Using TLS encrypted quorum communication" in obs.observer_log()
    finally:
        obs.stop()


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

"""zkCli.sh (the Java client 3.8) with a JAAS Client section (Krb5LoginModule, keytab) against real
ZooKeeper and coord with the same JAAS Server section and krb5.conf, and a real MIT KDC."""
from __future__ import annotations

import re

import pytest

from tests.security.krb import run_zkcli_krb, write_krb_jaas
from tests.support.names import fresh
from tests.security.test_sasl_zkcli import split_events

pytestmark = pytest.mark.realzk


def test_zkcli_kerberos(realm, krb_pair, tmp_path):
    me = realm.principal("client")
    jaas = write_krb_jaas(tmp_path / "client.conf", client=(me, realm.keytab_of("client")))
    node = fresh("/zkcli-gss")   # the module's servers: a rerun must not meet this run's node; the same on both
    cmds = ["whoami", f"create {node} v sasl:{me}:cdrwa", f"getAcl {node}", f"get {node}", f"delete {node}"]
    out = {name: run_zkcli_krb(realm, f"{h}:{p}", jaas, cmds) for name, h, p in krb_pair.targets}
    assert split_events(out["zk"]) == split_events(out["coord"])
    text = "\n".join(out["zk"])
    assert "state:SaslAuthenticated" in text and f"'sasl,'{me}" in text, text
    assert any(re.search(r"\bsasl\b", ln) and me in ln for ln in out["zk"][:8]), text  # whoami


def test_zkcli_ticket_for_another_service(realm, krb_pair, tmp_path):
    """The client asks the KDC for another service's ticket (zookeeper.server.principal): both
    servers refuse it and the Java client reports AuthFailed."""
    try:
        realm.kdc.add_principal("zookeeper/otherhost")
    except RuntimeError as e:
        assert "already exists" in str(e)
    jaas = write_krb_jaas(tmp_path / "client.conf", client=(realm.principal("client"), realm.keytab_of("client")))
    flags = (f"-Dzookeeper.server.principal={realm.principal('zookeeper/otherhost')}",)
    out = {name: run_zkcli_krb(realm, f"{h}:{p}", jaas, ["ls /"], flags, timeout=120)
           for name, h, p in krb_pair.targets}
    events = {k: [ln for ln in v if "WatchedEvent" in ln or "AuthFailed" in ln] for k, v in out.items()}
    assert events["zk"] == events["coord"]
    assert any("AuthFailed" in ln for ln in events["zk"]), out["zk"]

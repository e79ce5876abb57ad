"""Secured Kafka: 3 real Kafka 3.9 brokers with `zookeeper.set.acl=true` logging in to the ensemble
once over SASL DIGEST-MD5 (a JAAS `Client` section; the servers' JAAS `Server` section knows the
user), once over mTLS (the brokers' `zookeeper.ssl.*` settings, the ensemble's secureClientPort;
the brokers' identity is their certificate's x509 DN), on coord and on Apache ZooKeeper 3.8 with
the same harness. Compared between the two backends:
the ACL of every znode under the chroot (Kafka's creator-all + world-read, creator-only on the
sensitive paths), what an unauthenticated client may do to them, a SCRAM user made with
`ConfigCommand --zookeeper` over SASL, and ZkSecurityMigrator turning the tree open and back to
secure (it also makes the secured top-level paths that did not exist yet). Slow: CI runs it with `-m slow`."""
from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from coord.kafka import tools
from coord.kafka.cluster import KafkaCluster
from tests.kafka.conftest import SESSION_TIMEOUT_MS, TICK_MS
from tests.security.certs import PASSWORD as STORE_PASSWORD
from tests.security.certs import Pki, ssl_keys
from tests.security.conftest import NETTY, SASL_PROVIDER, write_jaas
from tests.support.ensemble import Ensemble
from tests.support.real_zk import free_port

pytestmark = [pytest.mark.slow, pytest.mark.realzk]

USER, PASSWORD = "kafka", "kafka-secret"
MIGRATOR = "kafka.admin.ZkSecurityMigrator"
SENSITIVE = ("/kafka/config/users", "/kafka/config/brokers", "/kafka/delegation_token/tokens")
X509_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"


def _acls(zk: KazooClient, root: str = "/kafka") -> dict[str, list]:
    """path -> sorted (perms, scheme, id) of every znode under root (read as the brokers' user)."""
    out, stack = {}, [root]
    while stack:
        p = stack.pop()
        acl, _ = zk.get_acls(p)
        out[p] = sorted((a.perms, a.id.scheme, a.id.id) for a in acl)
        stack.extend(f"{p}/{c}" for c in zk.get_children(p))
    return out


def _anonymous(hosts: str) -> dict[str, str]:
    """What a client with no identity gets when it tries to change or read the brokers' znodes."""
    zk = KazooClient(hosts, timeout=20)
    zk.start(30)
    tries = {
        "set_broker": lambda: zk.set("/kafka/brokers/ids/1", b"{}"),
        "delete_controller": lambda: zk.delete("/kafka/controller"),
        "create_topic_znode": lambda: zk.create("/kafka/brokers/topics/evil", b"{}"),
        "set_acl_topics": lambda: zk.set_acls("/kafka/brokers/topics", OPEN_ACL_UNSAFE),
        "read_scram_user": lambda: zk.get("/kafka/config/users/alice"),
        "list_users": lambda: zk.get_children("/kafka/config/users"),
        "read_topic": lambda: zk.get("/kafka/brokers/topics/secured")[0] and "ok",
    }
    out = {}
    for name, fn in tries.items():
        try:
            fn()
            out[name] = "ok"
        except NoAuthError:
            out[name] = "NoAuth"
        except KazooException as e:
            out[name] = type(e).__name__
    zk.stop()
    zk.close()
    return out


class Secured:
    """How the brokers, the tools and the test's own client reach the ensemble in one mode."""

    def __init__(self, mode: str, backend: str, work, pki: Pki | None):
        self.mode = mode
        self.work = work
        extra_cfg, member_cfg, server_flags = {}, None, []
        if mode == "sasl":
            jaas = write_jaas(work / "jaas.conf", client=(USER, PASSWORD), server_users={USER: PASSWORD})
            self.flags = [f"-Djava.security.auth.login.config={jaas}"]
            server_flags = self.flags
            extra_cfg = {"authProvider.1": SASL_PROVIDER}
            self.broker_extra, self.tool_args = {}, []
        else:
            extra_cfg = dict(ssl_keys(pki, "JKS"), serverCnxnFactory=NETTY, **{"authProvider.x509": X509_PROVIDER})
            member_cfg = {sid: {"secureClientPort": str(free_port())} for sid in (1, 2, 3)}
            self.flags = []
            self.broker_extra = {
                "zookeeper.ssl.client.enable": "true",
                "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
                "zookeeper.ssl.keystore.location": str(pki.key_store("client", "JKS")),
                "zookeeper.ssl.keystore.password": STORE_PASSWORD, "zookeeper.ssl.keystore.type": "JKS",
                "zookeeper.ssl.truststore.location": str(pki.trust_store("JKS")),
                "zookeeper.ssl.truststore.password": STORE_PASSWORD, "zookeeper.ssl.truststore.type": "JKS"}
            tls_file = work / "zk-tls.properties"
            tls_file.write_text("".join(f"{k}={v}\n" for k, v in self.broker_extra.items()))
            self.tool_args = ["--zk-tls-config-file", str(tls_file)]
        self.ens = Ensemble(work / "ensemble", 3, kind=backend, tick_ms=TICK_MS, force_sync=False,
                            extra_cfg=extra_cfg, member_cfg=member_cfg, server_jvmflags=server_flags)
        if mode == "sasl":
            self.hosts = self.ens.connect_string()
        else:
            self.hosts = ",".join(f"127.0.0.1:{member_cfg[sid]['secureClientPort']}" for sid in (1, 2, 3))
        self.pki = pki

    def client(self) -> KazooClient:
        """A client with the brokers' identity."""
        if self.mode == "sasl":
            return KazooClient(self.hosts, timeout=20, sasl_options={
                "mechanism": "DIGEST-MD5", "username": USER, "password": PASSWORD})
        key, cert = self.pki.pem("client")
        return KazooClient(self.hosts, timeout=20, use_ssl=True, ca=str(self.pki.ca_pem()),
                           certfile=str(cert), keyfile=str(key), verify_certs=True)

    def tool(self, main_class: str, *args: str, timeout: float = 120.0):
        return tools.run_tool(main_class, [*args, *self.tool_args], self.work, jvm_flags=self.flags,
                              timeout=timeout)


def _run(mode: str, backend: str, work, pki: Pki | None) -> dict:
    sec = Secured(mode, backend, work, pki)
    ens = sec.ens
    cluster = KafkaCluster(work / "kafka", sec.hosts, 3, session_timeout_ms=SESSION_TIMEOUT_MS,
                           extra=dict(sec.broker_extra, **{"zookeeper.set.acl": "true"}), jvm_flags=sec.flags)
    cluster.zk_hosts = ens.connect_string()   # the harness's own readiness checks: the plain port
    zk_connect = f"{sec.hosts}/kafka"
    out = {}
    try:
        ens.start()
        cluster.start(wait=300)
        bootstrap = cluster.bootstrap_servers
        tools.run_tool(tools.TOPICS, ["--bootstrap-server", bootstrap, "--create", "--topic", "secured",
                                      "--partitions", "2", "--replication-factor", "3"], work)
        sec.tool(tools.CONFIGS, "--zookeeper", zk_connect, "--alter", "--entity-type", "users",
                 "--entity-name", "alice", "--add-config", "SCRAM-SHA-256=[iterations=4096,password=alice-secret]")
        me = sec.client()
        me.start(30)
        try:
            out["secure"] = _acls(me)
            out["scram_user"] = me.get("/kafka/config/users/alice")[0].startswith(b'{"version":')
            out["anonymous"] = _anonymous(ens.connect_string())
            sec.tool(MIGRATOR, "--zookeeper.acl", "unsecure", "--zookeeper.connect", zk_connect, timeout=300)
            out["unsecured"] = _acls(me)
            sec.tool(MIGRATOR, "--zookeeper.acl", "secure", "--zookeeper.connect", zk_connect, timeout=300)
            out["resecured"] = _acls(me)
            out["creator"] = [a for a in out["secure"]["/kafka/brokers/ids"] if a[0] == 31][0]
        finally:
            me.stop()
            me.close()
    finally:
        cluster.stop(kill=True)
        ens.stop()
    return out


@pytest.fixture(scope="module", params=["sasl", "mtls"])
def secured(request, tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("pki")) if request.param == "mtls" else None
    return {b: _run(request.param, b, tmp_path_factory.mktemp(f"secured-{request.param}-{b}"), pki)
            for b in ("coord", "zookeeper")}


WORLD_READ = (1, "world", "anyone")


def test_acls_brokers_set_are_zookeepers(secured):
    coord, zk = secured["coord"]["secure"], secured["zookeeper"]["secure"]
    creator = secured["zookeeper"]["creator"]
    assert creator[1] == ("sasl" if creator[2] == USER else "x509")
    assert secured["coord"]["creator"] == creator
    assert set(coord) == set(zk), sorted(set(coord) ^ set(zk))
    assert {p: a for p, a in coord.items() if a != zk[p]} == {}
    for p, acl in zk.items():
        if p == "/kafka":
            continue
        if p == "/kafka/consumers":   # Kafka keeps it open for old consumers (ZkData)
            assert acl == [(31, "world", "anyone")]
            continue
        sensitive = any(p == s or p.startswith(s + "/") for s in SENSITIVE)
        assert acl == ([creator] if sensitive else sorted([creator, WORLD_READ])), p
    assert secured["coord"]["scram_user"] and secured["zookeeper"]["scram_user"]


def test_unauthenticated_client_cannot_change_them(secured):
    coord, zk = secured["coord"]["anonymous"], secured["zookeeper"]["anonymous"]
    assert coord == zk
    assert zk["read_topic"] == "ok" and zk["read_scram_user"] == "NoAuth"
    assert all(v == "NoAuth" for k, v in zk.items() if k != "read_topic"), zk


def test_security_migrator(secured):
    for phase in ("unsecured", "resecured"):
        assert secured["coord"][phase] == secured["zookeeper"][phase], phase
    zk = secured["zookeeper"]
    assert all(a == [(31, "world", "anyone")] for a in zk["unsecured"].values())
    # the migrator also makes the top-level paths Kafka secures that did not exist yet (kafka-acl...)
    assert {p: a for p, a in zk["resecured"].items() if p in zk["secure"]} == zk["secure"]
    creator = zk["creator"]
    assert all(zk["resecured"][p] == sorted([creator, WORLD_READ]) for p in set(zk["resecured"]) - set(zk["secure"]))

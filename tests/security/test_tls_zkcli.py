"""zkCli.sh (the Java client 3.8) over TLS: zookeeper.client.secure with ClientCnxnSocketNetty and
JKS key and trust stores, against real ZooKeeper and coord with the same server stores; mTLS gives
the client its x509 identity on both, and x509 ACLs hold."""
from __future__ import annotations

import re
import subprocess

import pytest

from coord.bench.launch import ZK_NETTY_JARS
from tests.compat.zkcli import _env, strip_noise
from tests.security.certs import PASSWORD, ssl_keys
from tests.security.conftest import start_sasl_pair
from tests.security.test_sasl_zkcli import split_events
from tests.support.real_zk import ZKCLI

pytestmark = pytest.mark.realzk


def run_zkcli_tls(port: int, pki, commands: list[str], timeout: float = 120.0) -> list[str]:
    env = _env()
    # zkEnv.sh's class path misses the Netty codec jars Debian's zookeeper.jar manifest also omits;
    # the JVM takes the last -cp.
    cp = ":".join(["/etc/zookeeper/conf", "/usr/share/java/zookeeper.jar", *map(str, ZK_NETTY_JARS)])
    env["CLIENT_JVMFLAGS"] += " ".join([
        "", f"-cp {cp}", "-Dzookeeper.client.secure=true",
        "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
        f"-Dzookeeper.ssl.keyStore.location={pki.key_store('client', 'JKS')}",
        f"-Dzookeeper.ssl.keyStore.password={PASSWORD}",
        f"-Dzookeeper.ssl.trustStore.location={pki.trust_store('JKS')}",
        f"-Dzookeeper.ssl.trustStore.password={PASSWORD}"])
    script = "\n".join(commands + ["quit"]) + "\n"
    p = subprocess.run([str(ZKCLI), "-server", f"127.0.0.1:{port}"], input=script, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
    lines = strip_noise(p.stdout)
    return [re.sub(r"0x[0-9a-f]+|127\.0\.0\.1:\d+", "#", ln) for ln in lines
            if "WatchedEvent" in ln or not ln.startswith(("20", "\tat ", "java.", "log4j"))]


def test_zkcli_over_tls_with_client_certificate(pki, tmp_path):
    pair = start_sasl_pair(tmp_path, None, ssl_keys(pki, "JKS"), secure=True)
    try:
        cmds = ["whoami", "create /zkcli-tls v", "setAcl /zkcli-tls auth::cdrwa", "getAcl /zkcli-tls",
                "get /zkcli-tls"]
        out = {name: run_zkcli_tls(port, pki, cmds) for name, port in
               (("zk", pair.zk.secure_port), ("coord", pair.coord.secure_port))}
        assert split_events(out["zk"]) == split_events(out["coord"])
        text = "\n".join(out["zk"])
        assert "'x509,'" in text and "kafka-broker" in text and "SyncConnected" in text
    finally:
        pair.stop()

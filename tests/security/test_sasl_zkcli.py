"""zkCli.sh (the Java client 3.8) with a JAAS Client section: DIGEST-MD5 against real ZooKeeper and
coord configured with the same JAAS Server section. The Java client sends its authzid, so this also
covers the response hash with authzid (pure-sasl never sends one)."""
from __future__ import annotations

import re
import subprocess

import pytest

from tests.compat.zkcli import _env, strip_noise
from tests.security.conftest import USERS, write_jaas
from tests.support.names import fresh
from tests.support.real_zk import ZKCLI

pytestmark = pytest.mark.realzk


def run_zkcli(hostport: str, jaas, commands: list[str], timeout: float = 90.0,
              extra_flags: list[str] = ()) -> list[str]:
    env = _env()
    env["CLIENT_JVMFLAGS"] += f" -Djava.security.auth.login.config={jaas}"
    env["CLIENT_JVMFLAGS"] += "".join(f" {f}" for f in extra_flags)
    script = "\n".join(commands + ["quit"]) + "\n"
    p = subprocess.run([str(ZKCLI), "-server", hostport], input=script, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
    lines = strip_noise(p.stdout)
    # Session ids and timings differ between runs; the prompt carries the port.
    return [re.sub(r"0x[0-9a-f]+|\d+ ms|127\.0\.0\.1:\d+", "#", ln) for ln in lines
            if "WatchedEvent" in ln or not ln.startswith(("20", "\tat ", "java.", "log4j"))]


def split_events(lines: list[str]):
    """(command output, watch events in order): zkCli's event thread prints its events at any point
    between the main thread's lines, so only each stream's own order is compared."""
    events = [ln for ln in lines if "WatchedEvent" in ln]
    return [ln for ln in lines if "WatchedEvent" not in ln and ln != "WATCHER::"], events


def test_zkcli_jaas_client(sasl_pair, tmp_path):
    jaas = write_jaas(tmp_path / "client.conf", client=("jaasuser", USERS["jaasuser"]))
    node = fresh("/zkcli-sasl")   # the module's servers: a rerun must not meet this run's node; the same on both
    cmds = ["whoami", f"create {node} v sasl:jaasuser:cdrwa", f"getAcl {node}", f"get {node}", f"delete {node}"]
    out = {name: run_zkcli(f"{h}:{p}", jaas, cmds) for name, h, p in sasl_pair.targets}
    assert split_events(out["zk"]) == split_events(out["coord"])
    text = "\n".join(out["zk"])
    assert "state:SaslAuthenticated" in text and "'sasl,'jaasuser" in text
    assert any(re.search(r"\bsasl\b", ln) and "jaasuser" in ln for ln in out["zk"][:8]), text  # whoami


def test_zkcli_wrong_password(sasl_pair, tmp_path):
    jaas = write_jaas(tmp_path / "client.conf", client=("jaasuser", "wrong"))
    out = {name: run_zkcli(f"{h}:{p}", jaas, ["ls /"], timeout=120) for name, h, p in sasl_pair.targets}
    events = {k: [ln for ln in v if "WatchedEvent" in ln or "AuthFailed" in ln] for k, v in out.items()}
    assert events["zk"] == events["coord"]
    assert any("AuthFailed" in ln for ln in events["zk"])

"""The entrypoint as a container runs it, with real processes: a coord server started from each image's
variables, answering kazoo and `ruok`; the generated zoo.cfg read alike by real ZooKeeper 3.8; a
3-server ensemble from the canonical compose variables; the takeover of a data dir real ZooKeeper 3.8
wrote (every znode kept, ZooKeeper's files untouched); starts that must fail, failing with a message."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from coord.container import env as cenv
from tests.container.conftest import EntrypointProcess, ZooKeeperFromFile, image_env, run_entrypoint, wait_modes
from tests.support.coord_server import ROOT
from tests.support.real_zk import RealZooKeeper, four_letter, free_port


def official_env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    return {"ZOO_CONF_DIR": str(tmp / "conf"), "ZOO_DATA_DIR": str(tmp / "data"),
            "ZOO_DATA_LOG_DIR": str(tmp / "datalog"), "ZOO_SERVERS": f"server.1=localhost:2888:3888;{port}",
            "ZOO_4LW_COMMANDS_WHITELIST": "ruok,srvr,conf,stat", "ZOO_ADMINSERVER_ENABLED": "false", **extra}


def kazoo(connect: str) -> KazooClient:
    zk = KazooClient(hosts=connect, timeout=10)
    zk.start(timeout=30)
    return zk


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coord.cli", "container-healthcheck"], env=image_env(env),
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_official_variables_start_a_server_that_stops_on_sigterm_and_keeps_its_files(tmp_path):
    port = free_port()
    env = official_env(tmp_path, port, ZOO_TICK_TIME="1000")
    srv = EntrypointProcess(tmp_path / "run", env, port).start()
    try:
        assert four_letter("127.0.0.1", port, "ruok") == "imok"
        assert healthcheck(env).returncode == 0
        # exec, no shell in between: the pid we started is the server
        assert b"serve" in Path(f"/proc/{srv.proc.pid}/cmdline").read_bytes()
        zk = kazoo(srv.connect_string)
        zk.create("/kept", b"v1")
        zk.stop()
        conf = four_letter("127.0.0.1", port, "conf")
        assert f"clientPort={port}" in conf and "tickTime=1000" in conf
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
    finally:
        srv.stop()
    cfg_text = (tmp_path / "conf" / "zoo.cfg").read_text()
    assert (tmp_path / "data" / "myid").read_text() == "1\n"
    # a restart with other variables keeps zoo.cfg and myid (the official image's rule) and the data
    env2 = dict(env, ZOO_TICK_TIME="3000", ZOO_MY_ID="7")
    srv = EntrypointProcess(tmp_path / "run", env2, port).start()
    try:
        assert (tmp_path / "conf" / "zoo.cfg").read_text() == cfg_text
        assert (tmp_path / "data" / "myid").read_text() == "1\n"
        assert "tickTime=1000" in four_letter("127.0.0.1", port, "conf")
        zk = kazoo(srv.connect_string)
        assert zk.get("/kept")[0] == b"v1"
        zk.stop()
    finally:
        srv.stop()
    assert "kept as it is" in srv.log_text()


def test_confluent_variables_start_a_server_and_kafka_opts_whitelist_applies(tmp_path):
    port = free_port()
    env = {"ZOOKEEPER_CLIENT_PORT": str(port), "ZOOKEEPER_TICK_TIME": "2000", "ZOOKEEPER_ADMIN_ENABLE_SERVER": "false",
           "KAFKA_OPTS": "-Dzookeeper.4lw.commands.whitelist=*", "KAFKA_HEAP_OPTS": "-Xmx512M -Xms512M",
           "ZOO_CONF_DIR": str(tmp_path / "conf"), "ZOO_DATA_DIR": str(tmp_path / "data"),
           "ZOO_DATA_LOG_DIR": str(tmp_path / "log")}
    srv = EntrypointProcess(tmp_path / "run", env, port).start()
    try:
        # wchs is outside coord's default whitelist: only `*` from KAFKA_OPTS enables it
        assert "not in the whitelist" not in four_letter("127.0.0.1", port, "wchs")
        zk = kazoo(srv.connect_string)
        zk.create("/cp", b"x")
        zk.stop()
        assert healthcheck(env).returncode == 0
    finally:
        srv.stop()
    assert not (tmp_path / "data" / "coord").exists()      # no ZooKeeper data: no takeover
    runtime = (tmp_path / "data" / "coord-zoo.cfg").read_text()
    assert "4lw.commands.whitelist=*" in runtime and (tmp_path / "conf" / "zoo.cfg").read_text().startswith(cenv.MARK)
    assert "-Xmx512M is a JVM option" in srv.log_text()


def test_bitnami_variables_start_a_server_and_the_healthcheck_falls_back_to_srvr(tmp_path):
    port = free_port()
    env = {"ALLOW_ANONYMOUS_LOGIN": "yes", "ZOO_PORT_NUMBER": str(port), "ZOO_SERVER_ID": "1",
           "ZOO_CONF_DIR": str(tmp_path / "conf"), "ZOO_DATA_DIR": str(tmp_path / "data")}
    srv = EntrypointProcess(tmp_path / "run", env, port).start()
    try:
        # bitnami's default whitelist is "srvr, mntr": no ruok
        assert "not in the whitelist" in four_letter("127.0.0.1", port, "ruok")
        assert "Mode: standalone" in four_letter("127.0.0.1", port, "srvr")
        assert healthcheck(env).returncode == 0
    finally:
        srv.stop()


def test_a_variable_it_cannot_honour_stops_the_start_and_writes_nothing(tmp_path):
    r = run_entrypoint(official_env(tmp_path, free_port(), ZOO_TICK_TIME="soon"))
    assert r.returncode == 2
    assert "cannot start: ZOO_TICK_TIME: tickTime must be an integer, got 'soon'" in r.stderr
    assert not (tmp_path / "conf" / "zoo.cfg").exists() and not (tmp_path / "data" / "myid").exists()


def test_a_command_is_run_after_the_files_are_written(tmp_path):
    env = official_env(tmp_path, 2181)
    r = run_entrypoint(env, "cat", str(tmp_path / "conf" / "zoo.cfg"))
    assert r.returncode == 0 and r.stdout == cenv.plan(env).zoo_cfg


def test_the_healthcheck_fails_when_nothing_answers(tmp_path):
    env = official_env(tmp_path, free_port())
    assert run_entrypoint(env, "true").returncode == 0
    r = healthcheck(env)
    assert r.returncode == 1 and "unhealthy" in r.stderr


@pytest.mark.realzk
def test_real_zookeeper_reads_the_generated_zoo_cfg_as_coord_does(tmp_path):
    """The official image's file has no clientPort line: both servers take it from `;port`."""
    ports = {"zk": free_port(), "coord": free_port()}
    conf = {}
    for name, port in ports.items():
        env = official_env(tmp_path / name, port, ZOO_TICK_TIME="1500", ZOO_MAX_CLIENT_CNXNS="33",
                           ZOO_ADMINSERVER_ENABLED="false")
        assert run_entrypoint(env, "true").returncode == 0
        if name == "zk":
            srv = ZooKeeperFromFile(tmp_path / "zkrun", tmp_path / name / "conf" / "zoo.cfg", port)
        else:
            srv = EntrypointProcess(tmp_path / "coordrun", env, port)
        srv.start()
        try:
            conf[name] = dict(l.partition("=")[::2] for l in four_letter("127.0.0.1", port, "conf").splitlines()
                              if "=" in l)
        finally:
            srv.stop()
    # (serverId differs: ZooKeeper's standalone server reports 0, coord the myid; reported, not ours)
    for key in ("tickTime", "maxClientCnxns"):
        assert conf["zk"][key] == conf["coord"][key], key
    assert (conf["zk"]["clientPort"], conf["coord"]["clientPort"]) == (str(ports["zk"]), str(ports["coord"]))
    assert conf["coord"]["tickTime"] == "1500"


# -- taking a ZooKeeper volume over ----------------------------------------------------------------

def _tree(zk: KazooClient, path: str = "/") -> dict:
    out = {}
    for child in zk.get_children(path):
        p = path.rstrip("/") + "/" + child
        if p == "/zookeeper":
            continue
        data, st = zk.get(p)
        out[p] = (data, st.version, st.cversion, st.aversion, st.czxid, st.mzxid, st.numChildren,
                  st.ephemeralOwner)
        out.update(_tree(zk, p))
    return out


def _hashes(*dirs: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for d in dirs for p in sorted((d / "version-2").iterdir()) if p.is_file()}


@pytest.mark.realzk
def test_a_zookeeper_volume_is_taken_over_with_every_znode_and_its_files_untouched(tmp_path):
    zkdir = tmp_path / "zk"
    datalog = zkdir / "datalog"
    # /data and /datalog as the official image has them; small snapCount: snapshots and logs both
    real = RealZooKeeper(zkdir, extra_cfg={"dataLogDir": str(datalog), "snapCount": "60"}).start()
    try:
        zk = kazoo(real.connect_string)
        zk.add_auth("digest", "app:secret")
        for i in range(120):
            zk.create(f"/app/items/n{i:03d}", f"v{i}".encode(), makepath=True)
        for _ in range(5):
            zk.create("/app/queue/q-", b"job", sequence=True, makepath=True)
        for v in (b"c1", b"c2", b"c3"):
            zk.set("/app/items/n007", v)
        zk.delete("/app/items/n050")
        zk.create("/secure", b"s", acl=[make_digest_acl("app", "secret", all=True)])
        zk.set_acls("/app/queue", [make_digest_acl("app", "secret", all=True)])
        before = _tree(zk)
        zk.stop()
    finally:
        real.stop()
    assert len(before) > 120
    files = _hashes(real.data_dir, datalog)
    assert any("snapshot." in f for f in files) and any("log." in f for f in files)

    port = free_port()
    env = official_env(tmp_path, port, ZOO_DATA_DIR=str(real.data_dir), ZOO_DATA_LOG_DIR=str(datalog))
    srv = EntrypointProcess(tmp_path / "run", env, port).start()
    try:
        zk = kazoo(srv.connect_string)
        zk.add_auth("digest", "app:secret")
        assert _tree(zk) == before
        zk.create("/written-by-coord", b"new")
        zk.stop()
    finally:
        srv.stop()
    assert "took over" in srv.log_text()
    assert _hashes(real.data_dir, datalog) == files       # ZooKeeper's files: the same bytes, no more, no less
    assert (real.data_dir / "coord" / "version-2").is_dir()
    # the next start serves coord's own data (an import again would lose /written-by-coord)
    srv = EntrypointProcess(tmp_path / "run2", env, port).start()
    try:
        zk = kazoo(srv.connect_string)
        zk.add_auth("digest", "app:secret")
        assert zk.get("/written-by-coord")[0] == b"new"
        assert {p: v for p, v in _tree(zk).items() if p != "/written-by-coord"} == before
        zk.stop()
    finally:
        srv.stop()
    assert "took over" not in srv.log_text()


def test_zookeeper_files_that_cannot_be_imported_stop_the_start(tmp_path):
    data = tmp_path / "data"
    (data / "version-2").mkdir(parents=True)
    bad = data / "version-2" / "snapshot.5"
    bad.write_bytes(b"ZKSN" + os.urandom(200))
    r = run_entrypoint(official_env(tmp_path, free_port()))
    assert r.returncode == 2
    assert "cannot take over ZooKeeper's data" in r.stderr and "will not start on an empty tree" in r.stderr
    assert bad.read_bytes()[:4] == b"ZKSN" and not (data / "coord").exists()
    assert sorted(p.name for p in (data / "version-2").iterdir()) == ["snapshot.5"]


def _server_python() -> str | None:
    p = ROOT / ".venv-pypy" / "bin" / "python"
    return str(p) if p.exists() else None


def test_a_volume_the_container_user_cannot_read_stops_the_start(tmp_path):
    """As uid 1000 (the image's user) over a volume whose version-2/ belongs to root, mode 0700."""
    python = _server_python()
    if python is None:
        if os.environ.get("CI"):
            pytest.fail("CI run without .venv-pypy (scripts/setup.sh builds it): needed to run as uid 1000")
        pytest.skip(".venv-pypy missing (its interpreter is one uid 1000 can run): run scripts/setup.sh")
    if os.getuid() != 0:
        pytest.skip("needs root to start a process as uid 1000")
    base = Path(tempfile.mkdtemp(prefix="coord-volume-"))
    try:
        base.chmod(0o777)
        for d in ("conf", "data", "datalog"):
            (base / d).mkdir()
            (base / d).chmod(0o777)
        v2 = base / "data" / "version-2"
        v2.mkdir()
        (v2 / "snapshot.0").write_bytes(b"ZKSN" + bytes(100))
        v2.chmod(0o700)
        r = run_entrypoint(official_env(base, free_port()), python=python, user=1000, group=1000)
        assert r.returncode == 2, r.stderr
        assert f"{v2}: cannot read it (Permission denied)" in r.stderr and "uid 1000" in r.stderr
        assert "will not start on an empty tree" in r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- bitnami's TLS switches ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)])
def test_bitnami_tls_quorum_and_client_variables_make_a_tls_ensemble(kind, tmp_path):
    """Three members from bitnami's variables with ZOO_TLS_QUORUM_ENABLE and ZOO_TLS_CLIENT_ENABLE
    (key and trust stores as bitnami users pass them): coord serves them through the entrypoint, real
    ZooKeeper 3.8 from the very zoo.cfg files the entrypoint wrote; both say they run quorum TLS, elect
    a leader, and a kazoo client writes over TLS on one member and reads on another."""
    from tests.security.certs import PASSWORD, Pki
    pki = Pki(tmp_path / "pki")
    ks, ts = str(pki.key_store("server", "JKS")), str(pki.trust_store("JKS"))
    key, crt = pki.pem("client")
    peers = [(free_port(), free_port()) for _ in range(3)]
    servers = ",".join(f"127.0.0.1:{q}:{e}" for q, e in peers)
    members = []
    try:
        for sid in (1, 2, 3):
            port, secure = free_port(), free_port()
            env = {"ALLOW_ANONYMOUS_LOGIN": "yes", "ZOO_SERVER_ID": str(sid), "ZOO_SERVERS": servers,
                   "ZOO_PORT_NUMBER": str(port), "ZOO_CONF_DIR": str(tmp_path / f"conf{sid}"),
                   "ZOO_DATA_DIR": str(tmp_path / f"data{sid}"), "ZOO_4LW_COMMANDS_WHITELIST": "srvr, ruok",
                   "ZOO_TLS_QUORUM_ENABLE": "yes", "ZOO_TLS_QUORUM_KEYSTORE_FILE": ks,
                   "ZOO_TLS_QUORUM_KEYSTORE_PASSWORD": PASSWORD, "ZOO_TLS_QUORUM_TRUSTSTORE_FILE": ts,
                   "ZOO_TLS_QUORUM_TRUSTSTORE_PASSWORD": PASSWORD,
                   "ZOO_TLS_CLIENT_ENABLE": "yes", "ZOO_TLS_PORT_NUMBER": str(secure), "ZOO_TLS_CLIENT_AUTH": "need",
                   "ZOO_TLS_CLIENT_KEYSTORE_FILE": ks, "ZOO_TLS_CLIENT_KEYSTORE_PASSWORD": PASSWORD,
                   "ZOO_TLS_CLIENT_TRUSTSTORE_FILE": ts, "ZOO_TLS_CLIENT_TRUSTSTORE_PASSWORD": PASSWORD}
            if kind == "coord":
                m = EntrypointProcess(tmp_path / f"run{sid}", env, port).spawn()
            else:
                r = run_entrypoint(env, "true")
                assert r.returncode == 0, r.stderr
                m = ZooKeeperFromFile(tmp_path / f"zk{sid}", tmp_path / f"conf{sid}" / "zoo.cfg", port,
                                      ensemble=True)
                m.jvm_flags = ["-Dzookeeper.root.logger=INFO,CONSOLE"]   # for its quorum TLS line
                m.start()
            m.secure_port = secure
            members.append(m)
        modes = wait_modes(members, wait=120)
        assert sorted(modes) == ["follower", "follower", "leader"], modes
        for m in members:
            log = m.workdir / ("coord.log" if kind == "coord" else "zookeeper.log")
            assert "Using TLS encrypted quorum communication" in log.read_text(errors="replace"), log
        zk = KazooClient(hosts=f"127.0.0.1:{members[0].secure_port}", use_ssl=True, ca=str(pki.ca_pem()),
                         keyfile=str(key), certfile=str(crt), verify_certs=True, timeout=15)
        zk.start(timeout=60)
        zk.create("/bitnami-tls", b"v")
        zk.stop()
        zk = KazooClient(hosts=f"127.0.0.1:{members[2].secure_port}", use_ssl=True, ca=str(pki.ca_pem()),
                         keyfile=str(key), certfile=str(crt), verify_certs=True, timeout=15)
        zk.start(timeout=60)
        zk.sync("/bitnami-tls")
        assert zk.get("/bitnami-tls")[0] == b"v"
        zk.stop()
    finally:
        for m in members:
            m.stop()

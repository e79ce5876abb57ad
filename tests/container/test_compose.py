"""compose/ without a Docker engine: every compose file read as Docker reads it (`docker compose config`
where the client exists, else its YAML) and checked against the images' contracts (the zoo services'
variables really translate, their data dirs sit on named volumes, the brokers point at them); the one
line that moves a file between ZooKeeper and coord; the Dockerfile's rules; and the compose topologies
run as processes: the zoo services through the entrypoint, Kafka's brokers as real Kafka 3.9 JVMs."""
from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kazoo.client import KazooClient

from coord.aio import zoocfg
from coord.container import env as cenv
from tests.container.compose_files import (COMPOSE, FILES, IMAGE_LINE, compose_config, local_members,
                                           volume_for, zoo_services)
from tests.container.conftest import EntrypointProcess, ZooKeeperFromFile, image_env, run_entrypoint, wait_modes
from tests.support.real_zk import four_letter, free_port

KAFKA_FILES = [f for f in FILES if f.startswith("kafka")]
BEFORE = {"coord.yml": "zookeeper:3.8", "kafka-cp.yml": "confluentinc/cp-zookeeper:7.9.0",
          "kafka-bitnami.yml": "bitnami/zookeeper:3.9", "kafka-zookeeper.yml": "zookeeper:3.8"}


@pytest.mark.parametrize("name", FILES)
def test_each_file_names_the_one_line_that_moves_it_to_coord(name, tmp_path):
    path = COMPOSE / name
    text = path.read_text()
    assert len(IMAGE_LINE.findall(text)) == 1
    head = text.split("\nservices:")[0]
    assert "the one line you change" in head
    assert f"&zookeeper-image {BEFORE[name]}" in head and "&zookeeper-image coord:local" in head
    doc = compose_config(path)
    image = IMAGE_LINE.search(text).group(1)
    assert {s["image"] for s in zoo_services(doc).values()} == {image}
    # the swap: that line alone changes, and with it only the zoo services' image
    other = "coord:local" if image != "coord:local" else BEFORE[name]
    swapped = tmp_path / name
    swapped.write_text(IMAGE_LINE.sub(f"x-zookeeper-image: &zookeeper-image {other}", text))
    assert sum(a != b for a, b in zip(text.splitlines(), swapped.read_text().splitlines())) == 1
    doc2 = compose_config(swapped)
    assert {s["image"] for s in zoo_services(doc2).values()} == {other}
    for svc in list(zoo_services(doc).values()) + list(zoo_services(doc2).values()):
        svc.pop("image")
    assert doc2["services"] == doc["services"]


@pytest.mark.parametrize("name", FILES)
def test_zoo_services_translate_and_keep_their_data_on_named_volumes(name):
    doc = compose_config(COMPOSE / name)
    zoos = zoo_services(doc)
    assert sorted(zoos) == ["zoo1", "zoo2", "zoo3"]
    declared = set(doc.get("volumes") or {})
    ids = set()
    for svc_name, svc in zoos.items():
        assert svc.get("hostname", svc_name) == svc_name
        p = cenv.plan(svc["environment"])
        assert p.layout.flavor == FILES[name]
        for d in (p.layout.data_dir, p.layout.data_log_dir):
            if d is not None:
                held = volume_for(svc, d)
                assert held is not None, f"{svc_name}: {d} is on no volume: data would not survive a recreate"
                assert held[0] in declared, f"{svc_name}: volume {held[0]} not declared (not a named volume)"
        cfg = zoocfg.parse(p.zoo_cfg)
        assert {s.host for s in cfg.servers.values()} == set(zoos)
        ids.add(int(p.myid))
        assert int(p.myid) in cfg.servers
        me = cfg.servers[int(p.myid)]
        client_port = me.client_port or cfg.client_port
        assert any(str(m).endswith(f":{client_port}") for m in svc["ports"]), svc["ports"]
    assert ids == {1, 2, 3}


def _zk_connect(env: dict) -> str:
    return env.get("KAFKA_ZOOKEEPER_CONNECT") or env["KAFKA_CFG_ZOOKEEPER_CONNECT"]


@pytest.mark.parametrize("name", KAFKA_FILES)
def test_kafka_brokers_use_the_zoo_services(name):
    doc = compose_config(COMPOSE / name)
    zoos = zoo_services(doc)
    client_ports = {}
    for n, svc in zoos.items():
        cfg = zoocfg.parse(cenv.plan(svc["environment"]).zoo_cfg)
        me = cfg.servers[int(cenv.plan(svc["environment"]).myid)]
        client_ports[n] = me.client_port or cfg.client_port
    brokers = {n: s for n, s in doc["services"].items() if n.startswith("kafka")}
    assert len(brokers) == 3
    ids = set()
    for n, svc in brokers.items():
        assert re.fullmatch(r"confluentinc/cp-kafka:7\.\d+\.\d+|bitnami/kafka:3\.9", svc["image"])
        env = svc["environment"]
        hosts = [h.partition(":") for h in _zk_connect(env).split("/")[0].split(",")]
        assert {(h, int(p)) for h, _, p in hosts} == set(client_ports.items())
        ids.add(env.get("KAFKA_BROKER_ID") or env["KAFKA_CFG_BROKER_ID"])
        assert set(svc["depends_on"]) >= set(zoos)
    assert ids == {"1", "2", "3"}
    smoke = doc["services"]["smoke"]
    assert smoke["restart"] == "no" and "--max-messages 1000" in " ".join(smoke["command"])


def test_the_side_by_side_file_runs_the_same_kafka_cluster():
    on_coord, on_zk = compose_config(COMPOSE / "kafka-cp.yml"), compose_config(COMPOSE / "kafka-zookeeper.yml")
    for n in ("kafka1", "kafka2", "kafka3", "smoke"):
        assert on_coord["services"][n] == on_zk["services"][n], n


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def test_dockerfile_rules():
    text = (COMPOSE / "Dockerfile").read_text()
    assert text.index("ARG BASE=") < text.index("\nFROM ")
    build, final = _stages(text)
    assert build.startswith("${BASE} AS build") and final.startswith("${BASE}\n")
    assert "pypy3 -m venv /opt/coord" in build and "pypy3-dev" in build and "gcc" in build
    installs = " ".join(re.findall(r"apt-get install[^&]*", final))
    assert "pypy3" in installs.split()
    for tool in ("gcc", "g++", "cc", "clang", "make", "build-essential", "pypy3-dev", "libc6-dev", "python3-pip"):
        assert tool not in installs.split(), f"{tool} in the final stage"
    assert "COPY --from=build /opt/coord /opt/coord" in final
    assert re.search(r"^USER 1000:1000$", final, re.M)
    assert re.search(r'^VOLUME \["/data", "/datalog"\]$', final, re.M)
    assert re.search(r"^EXPOSE 2181 2888 3888 7000 8080$", final, re.M)
    assert re.search(r'^HEALTHCHECK .* CMD \["coord", "container-healthcheck"\]$', final, re.M)
    # exec form, no shell: SIGTERM reaches the entrypoint, which execs the server in its place
    assert re.search(r'^ENTRYPOINT \["coord", "container-entrypoint"\]$', final, re.M)
    ignore = [l for l in (COMPOSE / "Dockerfile.dockerignore").read_text().splitlines() if l and l[0] != "#"]
    assert ignore[0] == "*" and {"!coord", "!broker_meta", "!pyproject.toml"} <= set(ignore)


# -- the topologies as processes -------------------------------------------------------------------

def _start_all(members, tmp):
    """Start every member, then wait for each (as `docker compose up` starts them together)."""
    procs = [EntrypointProcess(tmp / name / "run", env, port) for name, env, port in members]
    try:
        for p in procs:
            p.spawn()
        for p in procs:
            p.wait_imok(60)
    except Exception:
        for p in procs:
            p.stop()
        raise
    return procs


@pytest.mark.parametrize("name", ["coord.yml", "kafka-cp.yml"])
def test_the_zoo_services_as_processes_form_an_ensemble_that_keeps_data(name, tmp_path):
    """docker-library's layout (ZOO_*) and conduktor's (ZOOKEEPER_*): ensemble, write, kill -9, restart."""
    procs = _start_all(local_members(compose_config(COMPOSE / name), tmp_path), tmp_path)
    try:
        modes = wait_modes(procs)
        assert sorted(modes) == ["follower", "follower", "leader"]
        zk = KazooClient(hosts=procs[0].connect_string, timeout=10)
        zk.start(30)
        zk.create("/compose", b"v")
        zk.stop()
        follower = procs[modes.index("follower")]
        follower.stop(kill=True)
        follower.start()
        zk = KazooClient(hosts=follower.connect_string, timeout=10)
        zk.start(30)
        zk.sync("/compose")
        assert zk.get("/compose")[0] == b"v"
        zk.stop()
    finally:
        for p in procs:
            p.stop()


def _kafka_missing() -> None:
    from coord.kafka import libs
    reason = libs.missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI run without Kafka: {reason}")
        pytest.skip(reason)


def _create_topic(bootstrap: str, topic: str, wait: float = 180.0) -> None:
    """Create a 3x3 topic, retrying while the freshly started controller is not yet answering."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + wait
    while True:
        try:
            admin.create_topics([NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})])[topic].result(30)
            return
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e):
                return
            last = e
        except (TimeoutError, concurrent.futures.TimeoutError) as e:
            last = e
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} not created in {wait}s: {last!r}")
        time.sleep(2)


@pytest.mark.parametrize("backend", ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)])
def test_the_kafka_file_as_processes_loses_no_acked_message_when_the_ensemble_leader_dies(backend, tmp_path):
    """kafka-zookeeper.yml run as processes: its zoo services' variables through the entrypoint, then
    served by coord (the file with its one line changed) or by real ZooKeeper 3.8 from the very zoo.cfg
    the entrypoint wrote; its three brokers as real Kafka 3.9 JVMs with no chroot, as in the file.
    Brokers register, a topic takes acks=all writes, the ensemble leader is killed under load, and
    every acknowledged message is consumed exactly once."""
    _kafka_missing()
    from coord.kafka.cluster import KafkaCluster
    from tests.kafka.load import ContinuousLoad
    members = local_members(compose_config(COMPOSE / "kafka-zookeeper.yml"), tmp_path)
    t0 = time.monotonic()
    if backend == "coord":
        servers = _start_all(members, tmp_path)
    else:
        servers = []
        for name, env, port in members:
            assert run_entrypoint(env, "true").returncode == 0
            servers.append(ZooKeeperFromFile(tmp_path / name / "run", Path(env["ZOO_CONF_DIR"]) / "zoo.cfg",
                                             port, ensemble=True).start())
    cluster = None
    try:
        modes = wait_modes(servers, 90)
        assert sorted(modes) == ["follower", "follower", "leader"], modes
        t_quorum = time.monotonic() - t0
        cluster = KafkaCluster(tmp_path / "kafka", ",".join(f"127.0.0.1:{port}" for _, _, port in members), 3,
                               chroot="", session_timeout_ms=10000)
        cluster.start(wait=240)
        t_ready = time.monotonic() - t0
        print(f"\n{backend}: quorum after {t_quorum:.1f} s, all 3 brokers registered after {t_ready:.1f} s")
        assert cluster.registered() == [1, 2, 3]
        _create_topic(cluster.bootstrap_servers, "compose")
        load = ContinuousLoad(cluster.bootstrap_servers, "compose", 3, rate=100).start()
        load.wait_acked(200, wait=120)
        leader = servers[modes.index("leader")]
        leader.stop(kill=True)
        acked = load.acked_count()
        load.wait_acked(acked + 200, wait=120)
        leader.start()
        if backend == "zookeeper":
            leader.wait_serving(90)
        load.stop()
        assert not load.failed, load.failed[:3]
        assert load.check() > 400
    finally:
        if cluster is not None:
            cluster.stop()
        for srv in servers:
            srv.stop()


# -- Kubernetes ------------------------------------------------------------------------------------

def _k8s() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((COMPOSE / "k8s" / "coord.yaml").read_text()) if d]
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def _container_env(sts: dict) -> dict[str, str]:
    c = sts["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: str(e["value"]) for e in c["env"]}


def test_kubernetes_manifests_follow_the_conventions():
    m = _k8s()
    sts = m["StatefulSet/coord"]
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 3 and spec["selector"]["matchLabels"] == labels
    hs = m[f"Service/{spec['serviceName']}"]
    assert hs["spec"]["clusterIP"] == "None" and hs["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in hs["spec"]["ports"]} >= {2888, 3888}
    assert hs["spec"]["selector"] == labels
    cs = [d for k, d in m.items() if k.startswith("Service/") and d["spec"].get("clusterIP") != "None"]
    assert len(cs) == 1 and [p["port"] for p in cs[0]["spec"]["ports"]] == [2181]
    assert cs[0]["spec"]["selector"] == labels
    pdb = m["PodDisruptionBudget/coord-pdb"]["spec"]
    assert pdb["maxUnavailable"] == 1 and pdb["selector"]["matchLabels"] == labels
    sc = pod["securityContext"]
    assert (sc["runAsUser"], sc["fsGroup"], sc["runAsNonRoot"]) == (1000, 1000, True)
    assert pod["enableServiceLinks"] is False
    c = pod["containers"][0]
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"] == ["coord", "container-healthcheck"]
    # the data dir and the log dir are on the claim template's volume
    env = _container_env(sts)
    mounts = {v["mountPath"]: v["name"] for v in c["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in spec["volumeClaimTemplates"]}
    for var in ("ZOO_DATA_DIR", "ZOO_DATA_LOG_DIR"):
        held = [n for p, n in mounts.items() if env[var] == p or env[var].startswith(p.rstrip("/") + "/")]
        assert held and held[0] in claims, var
    # ZOO_SERVERS names every pod by its stable name, server id = ordinal + 1
    servers = zoocfg.parse(cenv.plan({**env, "ZOO_MY_ID": "1"}).zoo_cfg).servers
    assert {sid: s.host for sid, s in servers.items()} == {
        i + 1: f"{sts['metadata']['name']}-{i}.{spec['serviceName']}" for i in range(spec["replicas"])}


@pytest.mark.parametrize("ordinal", [0, 2])
def test_kubernetes_myid_is_the_ordinal_plus_one(ordinal):
    sts = _k8s()["StatefulSet/coord"]
    cmd = sts["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[:2] == ["sh", "-c"] and cmd[2].endswith("exec coord container-entrypoint")
    probe = cmd[2].replace("exec coord container-entrypoint", 'echo "$ZOO_MY_ID"')
    out = subprocess.run(["sh", "-c", probe], env={"HOSTNAME": f"coord-{ordinal}", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(ordinal + 1)


def test_kubernetes_readiness_does_not_wait_for_a_quorum(tmp_path):
    """One pod of three, its peers unreachable (their names would appear only once it is Ready):
    the probe command passes while `srvr` says the server is not serving."""
    sts = _k8s()["StatefulSet/coord"]
    env = _container_env(sts)
    port = free_port()
    toks = env["ZOO_SERVERS"].split()
    toks[0] = f"server.1=127.0.0.1:{free_port()}:{free_port()};{port}"
    toks[1:] = [f"server.{i}=127.0.0.1:{free_port()}:{free_port()};{free_port()}" for i in (2, 3)]
    env.update(ZOO_SERVERS=" ".join(toks), ZOO_MY_ID="1", ZOO_ADMINSERVER_ENABLED="false",
               ZOO_CONF_DIR=str(tmp_path / "conf"), ZOO_DATA_DIR=str(tmp_path / "data"),
               ZOO_DATA_LOG_DIR=str(tmp_path / "data/log"))
    srv = EntrypointProcess(tmp_path / "run", env, port).start()
    try:
        assert "not currently serving" in four_letter("127.0.0.1", port, "srvr")
        probe = sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["command"]
        r = subprocess.run([sys.executable, "-m", "coord.cli", *probe[1:]], env=image_env(env),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        srv.stop()

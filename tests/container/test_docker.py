"""The image and the compose files on a real Docker engine (pytest-docker; the `docker` extra).

Run where an engine answers `docker info` (docs/docker.md, "Running the Docker tests"):

    .venv/bin/pip install -e '.[test,docker]'
    .venv/bin/python -m pytest -q tests/container/test_docker.py

Without an engine every test here skips, naming why; under CI=1 too, and only for that reason (CI's
machine has a Docker client but no engine). The image is built from compose/Dockerfile on
COORD_BASE_IMAGE (default debian:bookworm-slim); when that base cannot be pulled, a base is made from
Debian packages with debootstrap and `docker import`, as an engine without registry access must.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.container.compose_files import COMPOSE, IMAGE_LINE
from tests.support.coord_server import ROOT
from tests.support.names import fresh
from tests.support.real_zk import four_letter

IMAGE = os.environ.get("COORD_IMAGE", "coord:local")
LOCAL_BASE = "coord-base:bookworm"


def _engine_missing() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    r = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if r.returncode != 0:
        return "no Docker engine answers `docker info` on this machine"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0:
        return "the Docker engine answers but `docker compose` (the compose plugin) is missing"
    return None


_WHY = _engine_missing()
if _WHY is not None:
    if os.environ.get("CI"):
        _WHY += (" (CI=1: the Docker tests are skipped only because no Docker engine exists on this "
                 "machine; run them where one does: docs/docker.md, 'Running the Docker tests')")
    pytestmark = pytest.mark.skip(reason=_WHY)
else:
    try:
        from pytest_docker.plugin import get_docker_services
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytestmark = pytest.mark.skip(reason="pytest-docker missing: pip install -e '.[test,docker]'")


def docker(*args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} exited {r.returncode}: {r.stderr[-3000:]}")
    return r


def _base_image() -> str:
    """The base to build on: the registry's, or one made from Debian packages when that cannot be pulled."""
    base = os.environ.get("COORD_BASE_IMAGE", "debian:bookworm-slim")
    if docker("image", "inspect", base, check=False).returncode == 0:
        return base
    if docker("pull", base, check=False, timeout=900).returncode == 0:
        return base
    if docker("image", "inspect", LOCAL_BASE, check=False).returncode == 0:
        return LOCAL_BASE
    if shutil.which("debootstrap") is None:
        pytest.fail(f"cannot pull {base} and debootstrap is missing (apt-get install debootstrap) to make a base")
    with tempfile.TemporaryDirectory() as d:
        rootfs = Path(d) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs)], check=True,
                       capture_output=True, timeout=1800)
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", LOCAL_BASE], stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
    return LOCAL_BASE


@pytest.fixture(scope="session")
def image() -> str:
    base = _base_image()
    t0 = time.monotonic()
    docker("build", "--build-arg", f"BASE={base}", "-f", str(COMPOSE / "Dockerfile"), "-t", IMAGE, str(ROOT),
           timeout=3600)
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    print(f"\nbuilt {IMAGE} on {base} in {time.monotonic() - t0:.0f} s: {size / 2**20:.0f} MiB")
    return IMAGE


def wait_for(what, wait: float = 120.0, interval: float = 0.5, describe: str = "condition"):
    deadline = time.monotonic() + wait
    last = None
    while time.monotonic() < deadline:
        try:
            last = what()
        except Exception as e:    # noqa: BLE001 - anything a half-started service answers with
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise TimeoutError(f"{describe} not reached after {wait}s (last: {last!r})")


def ruok(port: int) -> bool:
    return four_letter("127.0.0.1", port, "ruok", 2.0) == "imok"


def mode(port: int) -> str:
    out = four_letter("127.0.0.1", port, "srvr", 2.0)
    return next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Mode:")), "")


# -- the image -------------------------------------------------------------------------------------

def test_image_contract(image):
    cfg = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert cfg["User"] == "1000:1000"
    assert {"2181/tcp", "2888/tcp", "3888/tcp", "7000/tcp", "8080/tcp"} <= set(cfg["ExposedPorts"])
    assert {"/data", "/datalog"} <= set(cfg["Volumes"])
    assert cfg["Entrypoint"] == ["coord", "container-entrypoint"]
    assert cfg["Healthcheck"]["Test"] == ["CMD", "coord", "container-healthcheck"]
    tools = docker("run", "--rm", "--entrypoint", "sh", image, "-c",
                   "for t in gcc cc g++ clang make; do command -v $t; done; true").stdout
    assert tools.strip() == "", f"compilers in the final image: {tools}"
    impl = docker("run", "--rm", "--entrypoint", "python", image, "-c",
                  "import sys; print(sys.implementation.name)").stdout.strip()
    assert impl == "pypy"
    assert docker("run", "--rm", "--entrypoint", "id", image, "-u").stdout.strip() == "1000"


@pytest.mark.parametrize("which", ["coord", "zookeeper:3.8"])
def test_cold_start_to_imok_and_a_clean_sigterm(image, which):
    ref = image if which == "coord" else which
    if which != "coord" and docker("pull", which, check=False, timeout=900).returncode != 0:
        pytest.skip(f"cannot pull {which} here (the comparison needs it)")
    env = ["-e", "ZOO_4LW_COMMANDS_WHITELIST=ruok,srvr"]
    t0 = time.monotonic()
    cid = docker("run", "-d", "-p", "127.0.0.1::2181", *env, ref).stdout.strip()
    try:
        port = int(docker("port", cid, "2181/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1])
        wait_for(lambda: ruok(port), 120, 0.1, f"{which} imok")
        cold = time.monotonic() - t0
        t1 = time.monotonic()
        docker("stop", "-t", "30", cid)
        stop = time.monotonic() - t1
        code = int(docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout)
        size = int(docker("image", "inspect", "-f", "{{.Size}}", ref).stdout)
        print(f"\n{which}: image {size / 2**20:.0f} MiB, cold start to imok {cold:.2f} s, "
              f"docker stop {stop:.2f} s, exit code {code}")
        if which == "coord":
            assert stop < 10 and code == 0, (stop, code, docker("logs", cid).stderr[-2000:])
    finally:
        docker("rm", "-f", cid, check=False)


# -- compose files ---------------------------------------------------------------------------------

def _project(tag: str) -> str:
    return f"coordtest{tag}{os.getpid()}"


@pytest.fixture(scope="class")
def coord_compose(image):
    with get_docker_services("docker compose", str(COMPOSE / "coord.yml"), _project("alone"),
                             ["up -d"], ["down -v"]) as services:
        for port in (2181, 2182, 2183):
            wait_for(lambda: ruok(port), 120, 0.5, f"imok on {port}")
        yield services


def _compose(services, cmd: str) -> str:
    return services._docker_compose.execute(cmd).decode()


def _kazoo(port: int) -> KazooClient:
    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=10)
    zk.start(60)
    return zk


class TestCoordCompose:
    """compose/coord.yml: three servers, each killed, cut off and recreated in turn. The servers are
    the class's: each test writes a fresh node, so a rerun does not meet its first attempt's."""

    def test_coord_compose_all_three_serve_and_are_healthy(self, coord_compose):
        wait_for(lambda: sorted(mode(p) for p in (2181, 2182, 2183)) == ["follower", "follower", "leader"],
                 90, 0.5, "a leader and two followers")
        for svc in ("zoo1", "zoo2", "zoo3"):
            cid = _compose(coord_compose, f"ps -q {svc}").strip()
            wait_for(lambda: docker("inspect", "-f", "{{.State.Health.Status}}", cid).stdout.strip() == "healthy",
                     120, 1, f"{svc} healthy")

    def test_coord_compose_a_killed_container_restarts_with_its_data(self, coord_compose):
        path = fresh("/killed")
        zk = _kazoo(2181)
        zk.create(path, b"before", makepath=True)
        zk.stop()
        _compose(coord_compose, "kill -s SIGKILL zoo2")
        _compose(coord_compose, "start zoo2")
        wait_for(lambda: ruok(2182), 120, 0.5, "zoo2 back")
        zk = wait_for(lambda: _kazoo(2182), 120, 1, "a session on zoo2")
        zk.sync(path)
        assert zk.get(path)[0] == b"before"
        zk.stop()

    def test_coord_compose_one_disconnected_leaves_two_serving(self, coord_compose):
        path = fresh("/partitioned")
        cid = _compose(coord_compose, "ps -q zoo3").strip()
        network = next(iter(json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", cid).stdout)))
        docker("network", "disconnect", network, cid)
        try:
            def write():
                zk = _kazoo(2181)
                try:
                    zk.create(path, b"two", makepath=True)
                    return True
                finally:
                    zk.stop()
            wait_for(write, 120, 1, "a write on the two connected servers")
        finally:
            docker("network", "connect", "--alias", "zoo3", network, cid)
        zk = wait_for(lambda: _kazoo(2183), 120, 1, "a session on zoo3 after reconnecting")
        zk.sync(path)
        assert zk.get(path)[0] == b"two"
        zk.stop()

    def test_coord_compose_data_survives_down_and_up(self, coord_compose):
        path = fresh("/down-up")
        zk = _kazoo(2181)
        zk.create(path, b"kept", makepath=True)
        zk.stop()
        _compose(coord_compose, "down")          # containers gone, named volumes kept
        _compose(coord_compose, "up -d")
        for port in (2181, 2182, 2183):
            wait_for(lambda: ruok(port), 120, 0.5, f"imok on {port}")
        zk = wait_for(lambda: _kazoo(2182), 120, 1, "a session after up")
        zk.sync(path)
        assert zk.get(path)[0] == b"kept"
        zk.stop()


# -- Kafka -----------------------------------------------------------------------------------------

BOOTSTRAP = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"


def _registered(port: int = 2181) -> list[int]:
    zk = _kazoo(port)
    try:
        return sorted(int(c) for c in zk.get_children("/brokers/ids"))
    finally:
        zk.stop()


def _smoke_passed(services) -> bool:
    cid = _compose(services, "ps -a -q smoke").strip()
    state = json.loads(docker("inspect", "-f", "{{json .State}}", cid).stdout)
    if state["Status"] != "exited":
        return False
    assert state["ExitCode"] == 0, docker("logs", cid).stdout[-3000:]
    return True


@pytest.mark.parametrize("name", ["kafka-cp.yml", "kafka-bitnami.yml"])
def test_kafka_compose_brokers_register_and_the_smoke_service_round_trips(image, name):
    with get_docker_services("docker compose", str(COMPOSE / name), _project(name.split(".")[0].replace("-", "")),
                             ["up -d"], ["down -v"]) as services:
        assert wait_for(lambda: _registered() == [1, 2, 3], 240, 2, "three brokers registered")
        wait_for(lambda: _smoke_passed(services), 300, 2, "the smoke service")


def test_kafka_compose_clients_and_a_leader_kill_lose_no_acked_message(image):
    from tests.kafka.load import ContinuousLoad
    from tests.container.test_compose import _create_topic
    with get_docker_services("docker compose", str(COMPOSE / "kafka-cp.yml"), _project("kafkaload"),
                             ["up -d"], ["down -v"]) as services:
        wait_for(lambda: _registered() == [1, 2, 3], 240, 2, "three brokers registered")
        _create_topic(BOOTSTRAP, "aio")
        assert asyncio.run(_aiokafka_round_trip("aio", 100)) == [str(i).encode() for i in range(100)]
        _create_topic(BOOTSTRAP, "load")
        load = ContinuousLoad(BOOTSTRAP, "load", 3, rate=100).start()
        load.wait_acked(200, wait=120)
        leader = next(f"zoo{i}" for i, p in enumerate((2181, 2182, 2183), 1) if mode(p) == "leader")
        _compose(services, f"kill -s SIGKILL {leader}")
        acked = load.acked_count()
        load.wait_acked(acked + 300, wait=180)
        _compose(services, f"start {leader}")
        load.stop()
        assert not load.failed, load.failed[:3]
        assert load.check() > 500


async def _aiokafka_round_trip(topic: str, n: int) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        for i in range(n):
            await producer.send_and_wait(topic, str(i).encode(), partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    got: list[bytes] = []

    async def consume() -> None:
        async for msg in consumer:
            if msg.partition == 0:
                got.append(msg.value)
            if len(got) == n:
                return
    try:
        await asyncio.wait_for(consume(), 120)
    finally:
        await consumer.stop()
    return got


def test_swapping_zookeeper_for_coord_in_the_kafka_file_keeps_topics_and_messages(image, tmp_path):
    """kafka-zookeeper.yml on zookeeper:3.8, then the same project with its one line changed: coord
    takes ZooKeeper's volumes over, brokers come back with every topic, messages still there."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from tests.container.test_compose import _create_topic
    if docker("pull", "zookeeper:3.8", check=False, timeout=900).returncode != 0:
        pytest.skip("cannot pull zookeeper:3.8 here")
    original = COMPOSE / "kafka-zookeeper.yml"
    swapped = tmp_path / "kafka-zookeeper.yml"
    swapped.write_text(IMAGE_LINE.sub(f"x-zookeeper-image: &zookeeper-image {image}", original.read_text()))
    project = _project("swap")
    with get_docker_services("docker compose", str(original), project, ["up -d"], []):
        wait_for(lambda: _registered() == [1, 2, 3], 240, 2, "three brokers on ZooKeeper")
        _create_topic(BOOTSTRAP, "kept")
        p = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all"})
        for i in range(500):
            p.produce("kept", str(i).encode(), partition=i % 3)
        assert p.flush(120) == 0
    docker("compose", "-f", str(original), "-p", project, "down")           # volumes kept
    with get_docker_services("docker compose", str(swapped), project, ["up -d"], ["down -v"]) as services:
        wait_for(lambda: _registered() == [1, 2, 3], 240, 2, "three brokers on coord")
        assert "took over" in _compose(services, "logs zoo1")
        zk = _kazoo(2181)
        assert "kept" in zk.get_children("/brokers/topics")
        zk.stop()
        c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "swap", "enable.auto.commit": False})
        c.assign([TopicPartition("kept", part, 0) for part in range(3)])
        got = set()
        deadline = time.monotonic() + 120
        while len(got) < 500 and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                got.add(int(m.value()))
        c.close()
        assert got == set(range(500))

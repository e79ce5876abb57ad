"""Kafka-flow harness on the real Java ZooKeeper client: Java "brokers" and Python broker_meta nodes
in one cluster register, see each other, elect one controller and fail over to each other."""
from __future__ import annotations

import uuid

import pytest

from broker_meta import codec, paths
from broker_meta.broker_node import BrokerNode, BrokerNodeConfig
from broker_meta.controller import get_controller, get_controller_epoch
from broker_meta.model import TopicPartition
from broker_meta.registry import live_brokers
from broker_meta.stream_controller import ControllerConfig
from broker_meta.topics import create_topic, get_partition_states

from . import javaharness
from .conftest import ENSEMBLE_SESSION_MS, SESSION_TIMEOUT_MS, Clients, start_target, wait_until

pytestmark = pytest.mark.skipif(not javaharness.available(), reason="java/javac or zookeeper.jar missing")


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory):
    return javaharness.compile_harness(tmp_path_factory.mktemp("java-classes"))


class Mixed:
    def __init__(self, zk_clients, java_classes, tmp_path, session_timeout_ms: int = SESSION_TIMEOUT_MS):
        self.zk_clients = zk_clients
        self.classes = java_classes
        self.tmp = tmp_path
        self.session_timeout_ms = session_timeout_ms
        self.admin = zk_clients.new(session_timeout_ms=max(session_timeout_ms, 30000))
        self.py: dict[int, BrokerNode] = {}
        self.java: dict[int, javaharness.JavaBroker] = {}

    def start_java(self, broker_id: int) -> javaharness.JavaBroker:
        j = javaharness.JavaBroker(self.classes, self.zk_clients.connect, broker_id, self.session_timeout_ms, self.tmp)
        self.java[broker_id] = j
        j.wait_event(lambda e: e["event"] == "registered")
        return j

    def start_py(self, broker_id: int) -> BrokerNode:
        n = BrokerNode(self.zk_clients.connect, BrokerNodeConfig(
            broker_id, port=9000 + broker_id, session_timeout_ms=self.session_timeout_ms,
            controller=ControllerConfig(leader_imbalance_check_interval_s=3600))).start()
        self.py[broker_id] = n
        return n

    def states(self, topic: str, n: int):
        return get_partition_states(self.admin, [TopicPartition(topic, p) for p in range(n)])

    def live(self) -> set[int]:
        return {b.broker_id for b in live_brokers(self.admin)}

    def all_led_by_live(self, topic: str, n: int) -> bool:
        live = self.live()
        return all(s is not None and s.leader in live and s.leader in s.isr and set(s.isr) <= live
                   for s in self.states(topic, n).values())

    def close(self):
        for n in self.py.values():
            n.stop()
        for j in self.java.values():
            j.quit()


@pytest.fixture
def mixed(zk_clients, java_classes, tmp_path):
    m = Mixed(zk_clients, java_classes, tmp_path)
    yield m
    m.close()


def test_java_registration_is_kafka_shaped_and_seen_by_python(mixed):
    j = mixed.start_java(101)
    reg = j.wait_event(lambda e: e["event"] == "registered")
    node = mixed.start_py(1)
    brokers = {b.broker_id: b for b in live_brokers(mixed.admin)}
    assert set(brokers) == {1, 101}
    assert brokers[101].broker_epoch == reg["epoch"]
    raw = mixed.admin.get_data(paths.broker(101))[0]
    assert codec.encode_broker(codec.decode_broker(101, raw)) == raw  # the Java bytes are Kafka's bytes
    j.wait_event(lambda e: e["event"] == "brokers" and e["ids"] == [1, 101])
    # one controller for the whole cluster, whoever it is
    ctl = wait_until(lambda: get_controller(mixed.admin), what="controller")
    assert ctl.broker_id in (1, 101)
    if ctl.broker_id == 1:
        assert node.is_controller


def test_java_and_python_controllers_fail_over_to_each_other(mixed):
    java_python_failover(mixed)


@pytest.fixture(params=["coord-ensemble", pytest.param("zookeeper-ensemble", marks=pytest.mark.slow)])
def mixed_on_ensemble(request, java_classes, tmp_path):
    target = start_target(request.param, tmp_path / "server")
    clients = Clients(target, f"/bm-{uuid.uuid4().hex[:12]}")
    m = Mixed(clients, java_classes, tmp_path, session_timeout_ms=ENSEMBLE_SESSION_MS)
    try:
        yield m
    finally:
        m.close()
        clients.close_all()
        target.stop()


@pytest.mark.slow
def test_java_and_python_fail_over_on_an_ensemble(mixed_on_ensemble):
    """The same mixed cluster on a 3-server ensemble (clients spread over all servers), whose leader
    is killed while Java and Python brokers run: every session survives, then the failovers go on
    with 2 of 3 servers."""
    m = mixed_on_ensemble
    ens = m.zk_clients.target.handle

    def kill_ensemble_leader():
        before = ({b.broker_id: b.broker_epoch for b in live_brokers(m.admin)}, get_controller(m.admin).broker_id,
                  get_controller_epoch(m.admin))
        ens.leader().stop(kill=True)
        wait_until(lambda: any(_mode(x) == "leader" for x in ens.members), timeout=60, what="a new ensemble leader")
        wait_until(lambda: ({b.broker_id: b.broker_epoch for b in live_brokers(m.admin)},
                            get_controller(m.admin).broker_id, get_controller_epoch(m.admin)) == before,
                   timeout=60, what="the same sessions, controller and epoch after the leader change")
        wait_until(lambda: m.all_led_by_live("mixed", 6), what="leaders live after the leader change")

    java_python_failover(m, after_rejoin=kill_ensemble_leader)


def _mode(member):
    try:
        return member.mode() if member.proc is not None else None
    except OSError:
        return None


def java_python_failover(mixed, after_rejoin=lambda: None):
    j = mixed.start_java(101)
    j.wait_event(lambda e: e["event"] == "ready")  # first broker up: the Java broker leads
    mixed.start_py(1)
    mixed.start_py(2)
    create_topic(mixed.admin, "mixed", assignment={0: [1, 2, 101], 1: [2, 101, 1], 2: [101, 1, 2],
                                                   3: [1, 101, 2], 4: [2, 1, 101], 5: [101, 2, 1]})
    wait_until(lambda: all(s is not None for s in mixed.states("mixed", 6).values()), what="Java created states")
    for tp, s in mixed.states("mixed", 6).items():
        raw = mixed.admin.get_data(paths.partition_state("mixed", tp.partition))[0]
        assert codec.encode_partition_state(codec.decode_partition_state(raw)) == raw
        assert s.controller_epoch == get_controller_epoch(mixed.admin)[0]

    # 1. the Java controller moves leadership off a dead Python broker
    mixed.py.pop(1).stop()
    wait_until(lambda: mixed.all_led_by_live("mixed", 6), what="Java controller moved leaders off broker 1")

    # 2. kill -9 the Java controller: after its session times out a Python broker takes over
    epoch = get_controller_epoch(mixed.admin)[0]
    mixed.java.pop(101).kill()
    wait_until(lambda: mixed.py[2].is_controller and mixed.py[2].controller.ready.is_set(),
               timeout=30 + mixed.session_timeout_ms / 1000,
               what="Python broker 2 elected")
    assert get_controller_epoch(mixed.admin)[0] == epoch + 1
    wait_until(lambda: mixed.all_led_by_live("mixed", 6), what="Python controller moved leaders off 101")
    assert {s.leader for s in mixed.states("mixed", 6).values()} == {2}

    # 3. the Java broker restarts: the Python controller brings it back into ISRs and preferred leadership
    j = mixed.start_java(101)
    wait_until(lambda: mixed.states("mixed", 6)[TopicPartition("mixed", 2)].leader == 101, what="preferred leader 101")
    first_epoch = [e for e in j.events if e["event"] == "registered"][-1]["epoch"]
    after_rejoin()

    # 4. the Java broker's session expires: it re-registers with a larger epoch (a bounce for the controller)
    mark = j.mark()
    j.send("expire")
    j.wait_event(lambda e: e["event"] == "expired", after=mark)
    again = j.wait_event(lambda e: e["event"] == "registered", after=mark)
    assert again["epoch"] > first_epoch
    wait_until(lambda: {b.broker_id: b.broker_epoch for b in live_brokers(mixed.admin)}.get(101) == again["epoch"],
               what="new epoch visible")
    wait_until(lambda: mixed.all_led_by_live("mixed", 6), what="leaders live after the bounce")

    # 5. the Python controller's session expires: the Java broker may win this time; either way the
    #    cluster keeps a controller and, when the last Python broker dies, leaders move to Java
    mark = j.mark()
    mixed.zk_clients.expire(mixed.py[2].zk)
    wait_until(lambda: get_controller_epoch(mixed.admin)[0] >= epoch + 2, what="re-election after expiry")
    wait_until(lambda: get_controller(mixed.admin) is not None, what="a controller")
    mixed.py.pop(2).stop()
    j.wait_event(lambda e: e["event"] in ("ready", "broker_change"), after=mark, timeout=30)
    try:
        wait_until(lambda: mixed.all_led_by_live("mixed", 6), timeout=30, what="Java controller leads all")
    except AssertionError as e:
        raise AssertionError(f"{e}; live {mixed.live()}, controller {get_controller(mixed.admin)}, "
                             f"states {mixed.states('mixed', 6)}, java events {j.events[mark:]}") from None
    assert {s.leader for s in mixed.states("mixed", 6).values()} == {101}
    assert get_controller(mixed.admin).broker_id == 101

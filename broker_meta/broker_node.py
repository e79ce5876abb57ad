"""A Python broker in a Kafka (ZooKeeper-mode) cluster: registers /brokers/ids/<id>, competes in the
controller election and runs the stream controller while elected (KafkaServer + KafkaController,
minus the log). Startup follows spec §3.1: chroot, top-level paths, cluster id, registration,
then the controller module."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from . import cluster
from .controller import ControllerElection
from .events import EventThread
from .model import BrokerRegistration, EndPoint, SupportedVersionRange
from .registry import BrokerRegistry, live_brokers
from .stream_controller import ControllerConfig, StreamController
from .zkclient import ZkClient

log = logging.getLogger(__name__)


@dataclass
class BrokerNodeConfig:
    broker_id: int
    host: str = "127.0.0.1"
    port: int = 9092
    listeners: tuple[EndPoint, ...] = ()
    rack: str | None = None
    features: dict[str, SupportedVersionRange] = field(default_factory=dict)
    session_timeout_ms: int = 18000
    controller_json_version: int = 2
    controller: ControllerConfig = field(default_factory=ControllerConfig)

    def registration(self) -> BrokerRegistration:
        eps = self.listeners or (EndPoint("PLAINTEXT", self.host, self.port, "PLAINTEXT"),)
        return BrokerRegistration(self.broker_id, eps, int(time.time() * 1000), self.rack, dict(self.features))


class BrokerNode:
    def __init__(self, connect: str, config: BrokerNodeConfig):
        self.connect = connect
        self.config = config
        self.zk: ZkClient | None = None
        self.events = EventThread(f"controller-events-{config.broker_id}")
        self.registry: BrokerRegistry | None = None
        self.controller: StreamController | None = None
        self.election: ControllerElection | None = None
        self.cluster_id: str | None = None

    @property
    def broker_id(self) -> int:
        return self.config.broker_id

    def start(self) -> "BrokerNode":
        self.zk = ZkClient(self.connect, session_timeout_ms=self.config.session_timeout_ms,
                           name=f"broker-{self.broker_id}").start()
        cluster.create_top_level_paths(self.zk)
        self.cluster_id = cluster.get_or_create_cluster_id(self.zk)
        self.registry = BrokerRegistry(self.zk)
        self.registry.register(self.config.registration())
        self.events.start()
        self.controller = StreamController(self.zk, self.broker_id, self.events, self.config.controller)
        self.election = ControllerElection(self.zk, self.broker_id, self.events, on_become=self.controller.on_become,
                                           on_resign=self.controller.on_resign,
                                           json_version=self.config.controller_json_version)
        self.controller.on_controller_moved = self.election.handle_controller_moved
        self.election.start()
        return self

    @property
    def is_controller(self) -> bool:
        return bool(self.election and self.election.is_active and self.controller and self.controller.is_active)

    def live_brokers(self):
        return live_brokers(self.zk)

    def stop(self) -> None:
        """Controlled shutdown of the process: resign, close the session (ephemerals go at once)."""
        if self.election:
            self.election.stop()
        self.events.wait_idle(5)
        self.events.stop()
        if self.zk:
            self.zk.close()

    def __enter__(self) -> "BrokerNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

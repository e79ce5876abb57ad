"""The KIP-866 migration of a ZooKeeper-mode cluster to KRaft (Kafka's ops guide, "ZooKeeper to KRaft
Migration"): a KRaft controller with zookeeper.metadata.migration.enable, formatted with the cluster id
the brokers wrote into ZooKeeper; then every broker restarted with the same flag and the controller
quorum named. The controller copies the metadata out of ZooKeeper and from then on writes every
change back into it (dual write), fencing its writes with /controller_epoch and /migration."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from coord.kafka.cluster import KafkaCluster
from coord.kafka.tools import run_tool

COMPLETED = "Completed migration of metadata from ZooKeeper to KRaft"


@dataclass
class KRaftControllerSpec:
    broker_id: int          # node.id
    port: int               # the CONTROLLER listener
    zk_connect: str         # with the chroot, as the brokers have it
    dir: Path
    session_timeout_ms: int = 18000

    @property
    def voters(self) -> str:
        return f"{self.broker_id}@127.0.0.1:{self.port}"

    def properties(self) -> dict[str, str]:
        return {
            "process.roles": "controller",
            "node.id": str(self.broker_id),
            "controller.quorum.voters": self.voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": f"CONTROLLER://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",   # how it reaches the ZooKeeper-mode brokers
            "zookeeper.metadata.migration.enable": "true",
            "zookeeper.connect": self.zk_connect,
            "zookeeper.session.timeout.ms": str(self.session_timeout_ms),
            "log.dirs": str((self.dir / "data").resolve()),
        }


def format_controller(spec: KRaftControllerSpec, cluster: KafkaCluster, workdir: Path) -> str:
    """kafka-storage format with the cluster id from /cluster/id; that id."""
    cluster_id = json.loads(cluster.zk.get(f"{cluster.chroot}/cluster/id")[0])["id"]
    spec.dir.mkdir(parents=True, exist_ok=True)
    props = spec.dir / "server.properties"
    props.write_text("".join(f"{k}={v}\n" for k, v in spec.properties().items()))
    run_tool("kafka.tools.StorageTool", ["format", "-t", cluster_id, "-c", str(props)], workdir)
    return cluster_id


def broker_migration_overrides(spec: KRaftControllerSpec) -> dict[str, str]:
    """What a ZooKeeper-mode broker needs to enter migration mode (its broker.id stays)."""
    return {"zookeeper.metadata.migration.enable": "true",
            "controller.quorum.voters": spec.voters,
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"}

"""N real Kafka brokers on one ensemble (coord or ZooKeeper), and what they wrote into it.

The brokers share the chroot /kafka (Kafka creates it); ready means every broker is registered in
/kafka/brokers/ids and a controller is elected. Broker epochs are the czxids of those ephemerals,
which is how Kafka itself derives them, so reading them back shows whether a broker re-registered.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from coord.bench.ensemble import _free_ports as free_ports  # one helper for bench and Kafka
from coord.kafka.broker import Broker, BrokerSpec

CHROOT = "/kafka"


class NotReady(Exception):
    pass


class KafkaCluster:
    def __init__(self, workdir: Path, zk_hosts: str, n: int = 3, *, ports: list[int] | None = None,
                 chroot: str = CHROOT, session_timeout_ms: int = 18000, sasl: bool = False,
                 authorizer: bool = False, extra: dict[str, str] | None = None,
                 jvm_flags: list[str] | None = None):
        self.workdir = Path(workdir)
        self.zk_hosts = zk_hosts
        self.chroot = chroot
        ports = ports or free_ports(n * (2 if sasl else 1))
        self.brokers: dict[int, Broker] = {}
        for i in range(1, n + 1):
            spec = BrokerSpec(i, ports[i - 1], f"{zk_hosts}{chroot}", self.workdir / f"broker{i}",
                              replication=min(3, n), session_timeout_ms=session_timeout_ms,
                              sasl_port=ports[n + i - 1] if sasl else None, authorizer=authorizer,
                              extra=dict(extra or {}), jvm_flags=list(jvm_flags or []))
            self.brokers[i] = Broker(spec)
        self._zk: KazooClient | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, wait: float = 180.0) -> "KafkaCluster":
        for b in self.brokers.values():
            b.start()
        self.wait_ready(wait)
        return self

    def stop(self, kill: bool = False) -> None:
        """Controlled shutdown of every broker at once; kill: kill -9 (tests that throw the cluster away)."""
        for b in self.brokers.values():
            if b.alive:
                b.kill() if kill else b.proc.terminate()
        for b in self.brokers.values():
            b.stop(timeout=30)
        if self._zk is not None:
            self._zk.stop()
            self._zk.close()
            self._zk = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    @property
    def zk_connect(self) -> str:
        return f"{self.zk_hosts}{self.chroot}"

    # -- what the brokers wrote into ZooKeeper ---------------------------------------------------
    @property
    def zk(self) -> KazooClient:
        """A kazoo session on the ensemble (no chroot: paths below are full paths)."""
        if self._zk is None:
            self._zk = KazooClient(hosts=self.zk_hosts, timeout=10.0)
            self._zk.start(timeout=30)
        return self._zk

    def registered(self) -> list[int]:
        try:
            return sorted(int(c) for c in self.zk.get_children(f"{self.chroot}/brokers/ids"))
        except NoNodeError:
            return []

    def broker_epochs(self) -> dict[int, int]:
        """broker id -> broker epoch (czxid of /brokers/ids/<id>) for every registered broker."""
        out = {}
        for i in self.registered():
            try:
                out[i] = self.zk.exists(f"{self.chroot}/brokers/ids/{i}").czxid
            except AttributeError:  # gone between the listing and the exists
                pass
        return out

    def controller(self) -> int | None:
        try:
            data, _ = self.zk.get(f"{self.chroot}/controller")
        except NoNodeError:
            return None
        return json.loads(data)["brokerid"]

    def controller_epoch(self) -> int:
        data, _ = self.zk.get(f"{self.chroot}/controller_epoch")
        return int(data)

    def partition_state(self, topic: str, partition: int) -> dict:
        data, _ = self.zk.get(f"{self.chroot}/brokers/topics/{topic}/partitions/{partition}/state")
        return json.loads(data)

    def wait_ready(self, wait: float = 180.0, ids: list[int] | None = None) -> None:
        """Until every listed (default: running) broker is registered and a controller is elected."""
        want = sorted(ids or [i for i, b in self.brokers.items() if b.alive])

        def check():
            for i in want:
                b = self.brokers[i]
                if b.proc is not None and b.proc.poll() is not None:
                    raise RuntimeError(f"broker {i} exited with {b.proc.returncode}; {b.exit_report()}")
            got = self.registered()
            starting = [i for i in want if not self.brokers[i].started()]
            if not set(want) <= set(got) or starting or self.controller() is None:
                raise NotReady(f"registered {got}, want {want}, starting {starting}, "
                               f"controller {self.controller()}")

        for attempt in Retrying(stop=stop_after_delay(wait), wait=wait_fixed(0.5), reraise=True,
                                retry=retry_if_exception_type(NotReady)):
            with attempt:
                check()

    def wait_for(self, what, wait: float = 60.0, interval: float = 0.5, describe: str = "condition"):
        """Poll what() until it returns something truthy; that value."""
        deadline = time.monotonic() + wait
        last = None
        while time.monotonic() < deadline:
            last = what()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(f"{describe} not reached after {wait}s (last: {last!r})")

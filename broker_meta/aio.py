"""asyncio interface: the same operations as coroutines, and watches as async iterators.

kazoo is thread-based; every call here runs the blocking library function in a worker thread
(`asyncio.to_thread`), so an event loop never blocks on ZooKeeper. Watch callbacks arrive on the
client's dispatcher thread and are handed to the loop with `call_soon_threadsafe`.
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Sequence

from . import cluster, configs, controller, registry, topics
from .broker_node import BrokerNode, BrokerNodeConfig
from .metadata_cache import ClusterView, MetadataCache
from .model import BrokerRegistration, ControllerRegistration, LiveBroker, PartitionState, TopicAssignment, TopicPartition
from .zkclient import ZkClient


class AsyncBrokerMeta:
    """`async with AsyncBrokerMeta("zk:2181/kafka") as bm: await bm.create_topic(...)`."""

    def __init__(self, connect: str, session_timeout_ms: int = 18000, **kw: Any):
        self._zk = ZkClient(connect, session_timeout_ms=session_timeout_ms, **kw)

    @property
    def zk(self) -> ZkClient:
        return self._zk

    async def start(self) -> "AsyncBrokerMeta":
        await asyncio.to_thread(self._zk.start)
        return self

    async def close(self) -> None:
        await asyncio.to_thread(self._zk.close)

    async def __aenter__(self) -> "AsyncBrokerMeta":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _run(self, fn, *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, self._zk, *args, **kw)

    # cluster and brokers
    async def create_top_level_paths(self) -> None:
        await self._run(cluster.create_top_level_paths)

    async def cluster_id(self, create: bool = False) -> str | None:
        return await self._run(cluster.get_or_create_cluster_id if create else cluster.get_cluster_id)

    async def live_brokers(self) -> list[LiveBroker]:
        return await self._run(registry.live_brokers)

    async def register_broker(self, info: BrokerRegistration) -> tuple[registry.BrokerRegistry, int]:
        reg = registry.BrokerRegistry(self._zk)
        epoch = await asyncio.to_thread(reg.register, info)
        return reg, epoch

    async def controller(self) -> ControllerRegistration | None:
        return await self._run(controller.get_controller)

    async def controller_epoch(self) -> tuple[int, int] | None:
        return await self._run(controller.get_controller_epoch)

    # topics and partitions
    async def create_topic(self, topic: str, partitions: int | None = None, replication_factor: int | None = None,
                           **kw: Any) -> TopicAssignment:
        return await self._run(topics.create_topic, topic, partitions, replication_factor, **kw)

    async def add_partitions(self, topic: str, total: int, **kw: Any) -> TopicAssignment:
        return await self._run(topics.add_partitions, topic, total, **kw)

    async def delete_topic(self, topic: str) -> None:
        await self._run(topics.delete_topic, topic)

    async def list_topics(self) -> list[str]:
        return await self._run(topics.list_topics)

    async def describe_topics(self, names: Sequence[str] | None = None) -> list[topics.TopicDescription]:
        return await self._run(topics.describe_topics, names)

    async def partition_states(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, PartitionState | None]:
        return await self._run(topics.get_partition_states, list(tps))

    # configs
    async def get_config(self, entity_type: str, entity_name: str) -> dict[str, str]:
        return await self._run(configs.get_entity_config, entity_type, entity_name)

    async def alter_config(self, entity_type: str, entity_name: str, add: dict[str, str] | None = None,
                           delete: Sequence[str] = ()) -> dict[str, str]:
        return await self._run(configs.alter_entity_config, entity_type, entity_name, add=add, delete=delete)

    # watches
    async def watch_brokers(self) -> AsyncIterator[list[LiveBroker]]:
        """Yields the live brokers now and after every change, until the consumer stops iterating."""
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[list[LiveBroker]] = asyncio.Queue()
        w = await asyncio.to_thread(registry.BrokerWatch, self._zk, lambda b: loop.call_soon_threadsafe(q.put_nowait, b))
        try:
            while True:
                yield await q.get()
        finally:
            w.close()

    async def watch_cluster(self) -> AsyncIterator[ClusterView]:
        """Yields the cluster view (brokers, controller, partition leaders) after every change."""
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[int] = asyncio.Queue()
        cache = MetadataCache(self._zk, on_change=lambda v: loop.call_soon_threadsafe(q.put_nowait, 1))
        await asyncio.to_thread(cache.start)
        try:
            while True:
                await q.get()
                while not q.empty():  # coalesce bursts
                    q.get_nowait()
                yield cache.view
        finally:
            cache.close()


async def run_broker(connect: str, config: BrokerNodeConfig) -> BrokerNode:
    """Start a Python broker (registration + controller candidacy) without blocking the loop."""
    return await asyncio.to_thread(BrokerNode(connect, config).start)

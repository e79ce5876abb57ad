"""A watch-driven, read-only view of the cluster: brokers, controller, topics and partition states.

What a streaming node or an operator's screen needs to stay in sync without polling: data watches on
/controller, every topic znode and every partition state; child watches on /brokers/ids and
/brokers/topics, or, while those do not exist yet (a cluster no broker has started on), exists
watches that bring the cache back when the first broker creates them. Each change re-reads only what changed and bumps `version`; `wait_for_change`
blocks until the next one. After a reconnect everything is re-read (kazoo drops watches).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from . import codec, paths
from .model import ControllerRegistration, LiveBroker, PartitionState, TopicAssignment, TopicPartition
from .registry import live_brokers
from .zkclient import OK, WatchEvent, ZkClient


@dataclass
class ClusterView:
    brokers: list[LiveBroker] = field(default_factory=list)
    controller: ControllerRegistration | None = None
    controller_epoch: int | None = None
    topics: dict[str, TopicAssignment] = field(default_factory=dict)
    states: dict[TopicPartition, PartitionState | None] = field(default_factory=dict)

    def leaders_by_broker(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for st in self.states.values():
            if st is not None and st.leader >= 0:
                out[st.leader] = out.get(st.leader, 0) + 1
        return out

    def offline_partitions(self) -> list[TopicPartition]:
        live = {b.broker_id for b in self.brokers}
        return sorted(tp for tp, st in self.states.items() if st is None or st.leader not in live)


class MetadataCache:
    def __init__(self, zk: ZkClient, on_change: Callable[[ClusterView], None] | None = None,
                 watch_states: bool = True):
        self.zk = zk
        self.view = ClusterView()
        self.version = 0
        self.on_change = on_change
        self.watch_states = watch_states
        self._cond = threading.Condition()
        self._name = f"metadata-cache-{id(self)}"

    def start(self) -> "MetadataCache":
        zk = self.zk
        zk.register_child_handler(paths.BROKER_IDS, lambda e: self._refresh_brokers())
        zk.register_child_handler(paths.TOPICS, lambda e: self._refresh_topics())
        # creation (exists) watches for a cluster without these paths yet
        zk.register_data_handler(paths.BROKER_IDS, lambda e: self._refresh_brokers())
        zk.register_data_handler(paths.TOPICS, lambda e: self._refresh_topics())
        zk.register_data_handler(paths.CONTROLLER, lambda e: self._refresh_controller())
        zk.register_state_handler(self._name, self)
        self.refresh_all()
        return self

    def close(self) -> None:
        zk = self.zk
        for p in (paths.BROKER_IDS, paths.TOPICS):
            zk.unregister_child_handler(p)
            zk.unregister_data_handler(p)
        zk.unregister_data_handler(paths.CONTROLLER)
        for t in list(self.view.topics):
            zk.unregister_data_handler(paths.topic(t))
        for tp in list(self.view.states):
            zk.unregister_data_handler(paths.partition_state(tp.topic, tp.partition))
        zk.unregister_state_handler(self._name)

    def after_reconnect(self) -> None:
        self.refresh_all()

    def after_initializing_session(self) -> None:
        self.refresh_all()

    def refresh_all(self) -> None:
        self._refresh_brokers(notify=False)
        self._refresh_controller(notify=False)
        self._refresh_topics(notify=False, reload_all=True)
        self._changed()

    def _changed(self) -> None:
        with self._cond:
            self.version += 1
            self._cond.notify_all()
        if self.on_change:
            self.on_change(self.view)

    def wait_for_change(self, since: int, timeout: float | None = None) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.version > since, timeout)
            return self.version

    def _watched_children(self, path: str) -> list[str]:
        """The children, with a child watch; [] with a creation watch if the path does not exist yet
        (a child watch cannot be set on a missing node)."""
        while True:
            kids = self.zk.get_children(path, register_watch=True)
            if kids is not None:
                return kids[0]
            if self.zk.exists(path) is None:
                return []
            # created between the two reads: no creation event will come, read again

    def _refresh_brokers(self, notify: bool = True) -> None:
        self._watched_children(paths.BROKER_IDS)
        self.view.brokers = live_brokers(self.zk)
        if notify:
            self._changed()

    def _refresh_controller(self, notify: bool = True) -> None:
        got = self.zk.get_data(paths.CONTROLLER)
        while got is None and self.zk.exists(paths.CONTROLLER) is not None:
            got = self.zk.get_data(paths.CONTROLLER)  # created between the two reads: no event will come
        self.view.controller = codec.decode_controller(got[0], got[1].version) if got else None
        epoch = self.zk.get_data(paths.CONTROLLER_EPOCH)
        self.view.controller_epoch = codec.decode_controller_epoch(epoch[0]) if epoch else None
        if notify:
            self._changed()

    def _refresh_topics(self, notify: bool = True, reload_all: bool = False) -> None:
        names = sorted(self._watched_children(paths.TOPICS))
        for gone in set(self.view.topics) - set(names):
            self.zk.unregister_data_handler(paths.topic(gone))
            self.view.topics.pop(gone)
            for tp in [tp for tp in self.view.states if tp.topic == gone]:
                self.zk.unregister_data_handler(paths.partition_state(tp.topic, tp.partition))
                self.view.states.pop(tp)
        new = names if reload_all else [t for t in names if t not in self.view.topics]
        for t in new:
            self.zk.register_data_handler(paths.topic(t), self._on_topic_event)
        for t, r in zip(new, self.zk.get_data_many([paths.topic(t) for t in new])):
            if r.code == OK:
                self.view.topics[t] = codec.decode_topic(t, r.data, r.stat.version)
                self._refresh_states([TopicPartition(t, p) for p in sorted(self.view.topics[t].partitions)])
        if notify:
            self._changed()

    def _on_topic_event(self, e: WatchEvent) -> None:
        topic = e.path.rsplit("/", 1)[1]
        if e.type == "deleted":
            return  # the /brokers/topics child watch removes it
        got = self.zk.get_data(e.path)
        if got is None:
            return
        self.view.topics[topic] = codec.decode_topic(topic, got[0], got[1].version)
        self._refresh_states([TopicPartition(topic, p) for p in sorted(self.view.topics[topic].partitions)])
        self._changed()

    def _refresh_states(self, tps: list[TopicPartition]) -> None:
        if self.watch_states:
            for tp in tps:
                self.zk.register_data_handler(paths.partition_state(tp.topic, tp.partition), self._on_state_event)
        responses = self.zk.get_data_many([paths.partition_state(tp.topic, tp.partition) for tp in tps])
        for tp, r in zip(tps, responses):
            if r.code == OK:
                self.view.states[tp] = codec.decode_partition_state(r.data, r.stat.version)
            else:
                self.view.states[tp] = None
                if self.watch_states:  # arm a creation watch: the controller creates it soon
                    path = paths.partition_state(tp.topic, tp.partition)
                    while self.zk.exists(path) is not None:
                        # created between the read and the exists: no creation event will come
                        got = self.zk.get_data(path)
                        if got is not None:
                            self.view.states[tp] = codec.decode_partition_state(got[0], got[1].version)
                            break

    def _on_state_event(self, e: WatchEvent) -> None:
        parts = e.path.split("/")  # /brokers/topics/<t>/partitions/<p>/state
        tp = TopicPartition(parts[3], int(parts[5]))
        if tp.topic not in self.view.topics:
            return
        self._refresh_states([tp])
        self._changed()

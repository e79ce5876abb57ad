"""The stream controller: what Kafka's controller does for partition leadership, in Python.

Once elected (controller.ControllerElection calls `on_become`), it loads the persisted state from
ZooKeeper — live brokers with epochs, topic assignments, every partition state — and from then on
keeps partitions led by live brokers:

- broker death (its ephemeral gone) or bounce (same id, larger epoch): partitions it led get a new
  leader from the ISR (clean election; unclean only if configured); it leaves every ISR.
- broker join: its replicas rejoin the ISRs of partitions with a live leader (`rejoin_isr=
  "immediate"`: our streaming nodes have no log to catch up; "leader" leaves ISR growth to the
  partition leaders, Kafka's IBP < 2.7 path), leaderless partitions are elected, partitions that
  could not be created for want of a live replica are created, and leadership is rebalanced to the
  preferred replicas (Kafka's auto leader rebalance, also run periodically).
- new topics / added partitions: partition znodes and states are created (leader = first live
  replica, ISR = live replicas); topic ids are backfilled.
- topic deletion markers, ISR-change and log-dir notifications, /admin/preferred_replica_election
  and /admin/reassign_partitions are processed and removed.

Every write goes through FencedWriter (multi with a check on /controller_epoch's version); state
writes are conditional on the partition epoch and, on BADVERSION, re-read and re-decided. A fenced
BADVERSION on the epoch means a newer controller exists: we resign. A successor resumes from the
same znodes, so nothing but ZooKeeper holds state across controllers.

All work happens on one EventThread; watch callbacks only enqueue.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from . import codec, paths
from .controller import FencedWriter
from .errors import ControllerMovedError
from .events import EventThread
from .leader_election import (needs_leader, offline_partition_leader, preferred_replica_leader,
                              remove_replicas_from_isr)
from .model import NO_LEADER, BrokerRegistration, PartitionState, ReplicaAssignment, TopicAssignment, TopicPartition
from .cluster import random_uuid_base64
from .topics import create_partition_states, get_partition_states, same_state, update_partition_states, write_topic_assignment
from .zkclient import BAD_VERSION, NO_NODE, NODE_EXISTS, OK, DeleteOp, WatchEvent, ZkClient

log = logging.getLogger(__name__)


@dataclass
class ControllerConfig:
    unclean_leader_election: bool = False
    auto_leader_rebalance: bool = True
    leader_imbalance_check_interval_s: float = 300.0
    leader_imbalance_per_broker_percentage: int = 10
    rebalance_on_broker_join: bool = True
    rejoin_isr: str = "immediate"  # or "leader"
    delete_topic_enable: bool = True
    max_state_update_retries: int = 10


@dataclass
class ControllerContext:
    epoch: int
    epoch_zk_version: int
    live_brokers: dict[int, int] = field(default_factory=dict)  # id -> broker epoch (czxid)
    broker_info: dict[int, BrokerRegistration] = field(default_factory=dict)
    assignments: dict[str, TopicAssignment] = field(default_factory=dict)
    states: dict[TopicPartition, PartitionState] = field(default_factory=dict)
    uninitialized: set[TopicPartition] = field(default_factory=set)
    log_dir_failures: list[int] = field(default_factory=list)
    deleted_topics: list[str] = field(default_factory=list)

    def replicas(self, tp: TopicPartition) -> tuple[int, ...]:
        a = self.assignments.get(tp.topic)
        ra = a.partitions.get(tp.partition) if a else None
        return ra.replicas if ra else ()

    def all_partitions(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, a in self.assignments.items() for p in a.partitions]


class StreamController:
    def __init__(self, zk: ZkClient, broker_id: int, events: EventThread, config: ControllerConfig | None = None):
        self.zk = zk
        self.broker_id = broker_id
        self.events = events
        self.config = config or ControllerConfig()
        self.ctx: ControllerContext | None = None
        self.fenced: FencedWriter | None = None
        self.on_controller_moved: Callable[[], None] = lambda: None
        self.ready = threading.Event()
        self.failover_started_at = 0.0
        self.failover_seconds = 0.0
        self.listeners: list[Callable[[str, dict], None]] = []
        self._timer: threading.Timer | None = None
        self._topic_handlers: set[str] = set()

    @property
    def is_active(self) -> bool:
        return self.ctx is not None

    def _emit(self, what: str, **detail) -> None:
        for cb in list(self.listeners):
            try:
                cb(what, detail)
            except Exception:
                log.exception("controller listener failed")

    # election callbacks (event thread) ---------------------------------------------------------

    def on_become(self, epoch: int, epoch_zk_version: int) -> None:
        """onControllerFailover: load everything, then repair what the last controller left."""
        self.failover_started_at = time.monotonic()
        self.ready.clear()
        self.ctx = ControllerContext(epoch, epoch_zk_version)
        self.fenced = FencedWriter(self.zk, epoch_zk_version)
        zk = self.zk
        for p in paths.PERSISTENT_PATHS:
            zk.make_sure_persistent_path_exists(p)
        for p, h in ((paths.BROKER_IDS, self._ev_broker_change), (paths.TOPICS, self._ev_topic_change),
                     (paths.DELETE_TOPICS, self._ev_topic_deletion),
                     (paths.ISR_CHANGE_NOTIFICATION, self._ev_isr_change),
                     (paths.LOG_DIR_EVENT_NOTIFICATION, self._ev_log_dir_event)):
            zk.register_child_handler(p, h)
        zk.register_data_handler(paths.REASSIGN_PARTITIONS, self._ev_reassign)
        zk.register_data_handler(paths.PREFERRED_REPLICA_ELECTION, self._ev_preferred)
        zk.register_state_handler(f"stream-controller-{self.broker_id}", self)

        self._load_brokers()
        self._load_topics()
        # Stale notifications: the states were just read fresh; consuming them also arms the watches.
        self._process_isr_change()
        self._process_log_dir_events()
        self._initialize_partitions(set(self.ctx.uninitialized))
        self._on_replicas_offline(set())
        self._on_broker_startup(set(self.ctx.live_brokers), rebalance=False)
        self._process_topic_deletion()
        if zk.exists(paths.PREFERRED_REPLICA_ELECTION) is not None:
            self._process_preferred_election()
        if zk.exists(paths.REASSIGN_PARTITIONS) is not None:
            self._process_reassignment()
        if self.config.auto_leader_rebalance:
            self._check_leader_imbalance()
            self._schedule_rebalance()
        self.failover_seconds = time.monotonic() - self.failover_started_at
        self.ready.set()
        log.info("controller %d (epoch %d) loaded %d brokers, %d topics, %d partitions in %.3fs", self.broker_id,
                 epoch, len(self.ctx.live_brokers), len(self.ctx.assignments), len(self.ctx.states), self.failover_seconds)
        self._emit("failover", epoch=epoch, partitions=len(self.ctx.states), seconds=self.failover_seconds)

    def on_resign(self) -> None:
        zk = self.zk
        for p in (paths.BROKER_IDS, paths.TOPICS, paths.DELETE_TOPICS, paths.ISR_CHANGE_NOTIFICATION,
                  paths.LOG_DIR_EVENT_NOTIFICATION):
            zk.unregister_child_handler(p)
        for p in (paths.REASSIGN_PARTITIONS, paths.PREFERRED_REPLICA_ELECTION):
            zk.unregister_data_handler(p)
        for t in self._topic_handlers:
            zk.unregister_data_handler(paths.topic(t))
        self._topic_handlers.clear()
        zk.unregister_state_handler(f"stream-controller-{self.broker_id}")
        if self._timer:
            self._timer.cancel()
            self._timer = None
        self.ctx = None
        self.fenced = None
        self.ready.clear()
        self._emit("resign")

    # ZkClient state handler: kazoo dropped our watches with the connection
    def after_reconnect(self) -> None:
        for name, fn in (("BrokerChange", self._process_broker_change), ("TopicChange", self._process_topic_change),
                         ("TopicDeletion", self._process_topic_deletion), ("IsrChange", self._process_isr_change),
                         ("LogDirEvent", self._process_log_dir_events),
                         ("ReassignmentCheck", self._rearm_admin_znodes)):
            self._enqueue(name, fn)

    # event plumbing --------------------------------------------------------------------------------

    def _enqueue(self, name: str, fn: Callable[[], None]) -> None:
        def guarded() -> None:
            if self.ctx is None:
                return
            try:
                fn()
            except ControllerMovedError:
                log.info("controller %d was fenced by a newer epoch; resigning", self.broker_id)
                self.on_controller_moved()
        self.events.put(name, guarded)

    def _ev_broker_change(self, _: WatchEvent) -> None:
        self._enqueue("BrokerChange", self._process_broker_change)

    def _ev_topic_change(self, _: WatchEvent) -> None:
        self._enqueue("TopicChange", self._process_topic_change)

    def _ev_topic_deletion(self, _: WatchEvent) -> None:
        self._enqueue("TopicDeletion", self._process_topic_deletion)

    def _ev_isr_change(self, _: WatchEvent) -> None:
        self._enqueue("IsrChangeNotification", self._process_isr_change)

    def _ev_log_dir_event(self, _: WatchEvent) -> None:
        self._enqueue("LogDirEventNotification", self._process_log_dir_events)

    def _ev_reassign(self, e: WatchEvent) -> None:
        if e.type in ("created", "changed"):
            self._enqueue("ZkPartitionReassignment", self._process_reassignment)
        else:
            self._enqueue("ReassignmentCheck", self._rearm_admin_znodes)

    def _ev_preferred(self, e: WatchEvent) -> None:
        if e.type in ("created", "changed"):
            self._enqueue("ReplicaLeaderElection", self._process_preferred_election)
        else:
            self._enqueue("ReassignmentCheck", self._rearm_admin_znodes)

    def _ev_partition_modifications(self, e: WatchEvent) -> None:
        topic = e.path.rsplit("/", 1)[1]
        if e.type == "changed":
            self._enqueue("PartitionModifications", lambda: self._process_partition_modifications(topic))

    def _rearm_admin_znodes(self) -> None:
        if self.zk.exists(paths.REASSIGN_PARTITIONS) is not None:
            self._process_reassignment()
        if self.zk.exists(paths.PREFERRED_REPLICA_ELECTION) is not None:
            self._process_preferred_election()

    def _schedule_rebalance(self) -> None:
        def fire() -> None:
            self._enqueue("AutoPreferredReplicaLeaderElection", self._auto_rebalance_tick)
        self._timer = threading.Timer(self.config.leader_imbalance_check_interval_s, fire)
        self._timer.daemon = True
        self._timer.start()

    def _auto_rebalance_tick(self) -> None:
        self._check_leader_imbalance()
        self._schedule_rebalance()

    # loading ---------------------------------------------------------------------------------------

    def _read_brokers(self) -> tuple[dict[int, int], dict[int, BrokerRegistration]]:
        kids = self.zk.get_children(paths.BROKER_IDS, register_watch=True)
        ids = sorted(int(c) for c in (kids[0] if kids else []) if c.isdigit())
        epochs, infos = {}, {}
        for i, r in zip(ids, self.zk.get_data_many([paths.broker(i) for i in ids])):
            if r.code == OK:
                epochs[i] = r.stat.czxid
                try:
                    infos[i] = codec.decode_broker(i, r.data, r.stat.czxid)
                except codec.CodecError:
                    log.warning("unreadable registration for broker %d", i)
        return epochs, infos

    def _load_brokers(self) -> None:
        self.ctx.live_brokers, self.ctx.broker_info = self._read_brokers()

    def _load_topics(self) -> None:
        kids = self.zk.get_children(paths.TOPICS, register_watch=True)
        self._add_topics(sorted(kids[0]) if kids else [])

    def _add_topics(self, topics: list[str]) -> list[TopicPartition]:
        """Register data handlers, read assignments (arming watches) and partition states."""
        ctx = self.ctx
        for t in topics:
            self.zk.register_data_handler(paths.topic(t), self._ev_partition_modifications)
            self._topic_handlers.add(t)
        responses = self.zk.get_data_many([paths.topic(t) for t in topics])
        backfill = []
        for t, r in zip(topics, responses):
            if r.code != OK:
                continue
            a = codec.decode_topic(t, r.data, r.stat.version)
            if a.topic_id is None:
                backfill.append(a)
            ctx.assignments[t] = a
        for a in backfill:
            self._backfill_topic_id(a)
        tps = [TopicPartition(t, p) for t in topics if t in ctx.assignments for p in sorted(ctx.assignments[t].partitions)]
        self._load_states(tps)
        return tps

    def _load_states(self, tps: list[TopicPartition]) -> None:
        for tp, st in get_partition_states(self.zk, tps).items():
            if st is None:
                self.ctx.uninitialized.add(tp)
            else:
                self.ctx.states[tp] = st
                self.ctx.uninitialized.discard(tp)

    def _backfill_topic_id(self, a: TopicAssignment) -> None:
        with_id = replace(a, topic_id=random_uuid_base64(), version=3)
        r = write_topic_assignment(self.fenced, with_id, a.zk_version)
        if r.code == OK:
            self.ctx.assignments[a.topic] = replace(with_id, zk_version=r.result.version)
        else:  # changed meanwhile: the data watch brings the new content
            log.info("topic id backfill of %s deferred (code %d)", a.topic, r.code)

    # partition state writes -----------------------------------------------------------------------

    def _update_states(self, decide: dict[TopicPartition, Callable[[PartitionState], PartitionState | None]],
                       reason: str) -> int:
        """Fenced conditional updates; BADVERSION -> re-read and decide again. Returns #written."""
        ctx = self.ctx
        pending = dict(decide)
        written = 0
        for _ in range(self.config.max_state_update_retries):
            updates: dict[TopicPartition, PartitionState] = {}
            for tp, fn in pending.items():
                cur = ctx.states.get(tp)
                if cur is None:
                    continue
                new = fn(cur)
                if new is None or same_state(new, cur):
                    continue
                updates[tp] = replace(new, controller_epoch=ctx.epoch, partition_epoch=cur.partition_epoch)
            if not updates:
                break
            retry: dict[TopicPartition, Callable] = {}
            for tp, r in update_partition_states(self.fenced, updates).items():
                if r.code == OK:
                    ctx.states[tp] = replace(updates[tp], partition_epoch=r.result.version)
                    written += 1
                elif r.code == BAD_VERSION:
                    retry[tp] = pending[tp]
                else:
                    log.error("failed to update state of %s (%s): code %d", tp, reason, r.code)
            if not retry:
                break
            for tp, st in get_partition_states(self.zk, list(retry)).items():
                if st is None:
                    ctx.states.pop(tp, None)
                    retry.pop(tp)
                    continue
                if same_state(st, updates[tp]):  # our own write, re-sent after a connection loss
                    retry.pop(tp)
                    written += 1
                ctx.states[tp] = st
            pending = retry
        if written:
            self._emit("states", reason=reason, count=written)
        return written

    def _initialize_partitions(self, tps: Iterable[TopicPartition]) -> None:
        """New partitions: leader = first live replica, ISR = live replicas, leader epoch 0."""
        ctx = self.ctx
        live = ctx.live_brokers
        states = {}
        for tp in sorted(tps):
            replicas = ctx.replicas(tp)
            live_replicas = tuple(r for r in replicas if r in live)
            if not live_replicas:
                ctx.uninitialized.add(tp)  # retried when a replica's broker starts
                continue
            states[tp] = PartitionState(live_replicas[0], 0, live_replicas, ctx.epoch)
        if not states:
            return
        for tp, r in create_partition_states(self.fenced, states).items():
            if r.code == OK:
                ctx.states[tp] = replace(states[tp], partition_epoch=0)
                ctx.uninitialized.discard(tp)
            elif r.code == NODE_EXISTS:
                self._load_states([tp])
            else:
                log.error("failed to create state of %s: code %d", tp, r.code)
        self._emit("created", count=len(states))

    # brokers ---------------------------------------------------------------------------------------

    def _process_broker_change(self) -> None:
        ctx = self.ctx
        current, infos = self._read_brokers()
        old = ctx.live_brokers
        new_ids = set(current) - set(old)
        dead = set(old) - set(current)
        bounced = {b for b in set(current) & set(old) if current[b] > old[b]}
        ctx.broker_info = infos
        if dead or bounced:
            ctx.live_brokers = {b: e for b, e in current.items() if b not in bounced}
            log.info("controller %d: brokers failed %s bounced %s", self.broker_id, sorted(dead), sorted(bounced))
            self._on_replicas_offline(dead | bounced)
            self._emit("brokers_failed", brokers=sorted(dead | bounced))
        ctx.live_brokers = current
        if new_ids or bounced:
            log.info("controller %d: brokers started %s", self.broker_id, sorted(new_ids | bounced))
            self._on_broker_startup(new_ids | bounced)

    def _on_replicas_offline(self, dead: set[int]) -> None:
        """Elect leaders for partitions whose leader is gone; drop dead replicas from ISRs."""
        ctx = self.ctx
        live = set(ctx.live_brokers)
        unclean = self.config.unclean_leader_election
        decide = {}
        for tp, st in ctx.states.items():
            if tp.topic not in ctx.assignments:
                continue
            gone = [r for r in st.isr if r not in live]
            if not needs_leader(st, live) and not gone:
                continue
            replicas = ctx.replicas(tp)

            def fn(cur: PartitionState, replicas=replicas) -> PartitionState | None:
                if needs_leader(cur, live):
                    elected = offline_partition_leader(replicas, cur.isr, live, unclean)
                    if elected is not None:
                        return cur.new_leader_and_isr(*elected)
                    if cur.leader == NO_LEADER:
                        return None  # already offline; keep the last ISR member for a clean election
                    return remove_replicas_from_isr(cur, [r for r in cur.isr if r not in live] + [cur.leader])
                gone_now = [r for r in cur.isr if r not in live]
                return remove_replicas_from_isr(cur, gone_now) if gone_now else None
            decide[tp] = fn
        if decide:
            self._update_states(decide, "broker failure" if dead else "offline partitions")

    def _on_broker_startup(self, started: set[int], rebalance: bool = True) -> None:
        ctx = self.ctx
        live = set(ctx.live_brokers)
        if self.config.rejoin_isr == "immediate":
            decide = {}
            for tp, st in ctx.states.items():
                if st.leader == NO_LEADER or st.leader not in live:
                    continue
                replicas = ctx.replicas(tp)
                if not any(b in started and b not in st.isr for b in replicas):
                    continue  # nothing to add: skip the closure (200k partitions at failover)
                joining = [b for b in replicas if b in started]

                def fn(cur: PartitionState, joining=joining) -> PartitionState | None:
                    if cur.leader == NO_LEADER or cur.leader not in live:
                        return None
                    add = [b for b in joining if b not in cur.isr]
                    if not add:
                        return None
                    # ISR expansion keeps the leader epoch; only the partition epoch moves.
                    return replace(cur, isr=tuple(cur.isr) + tuple(add))
                decide[tp] = fn
            if decide:
                self._update_states(decide, "isr expansion")
        self._on_replicas_offline(set())  # leaderless partitions may have a candidate now
        if ctx.uninitialized:
            self._initialize_partitions(set(ctx.uninitialized))
        if rebalance and self.config.auto_leader_rebalance and self.config.rebalance_on_broker_join:
            self._check_leader_imbalance()
        if rebalance:
            self._emit("brokers_started", brokers=sorted(started))

    # leadership balance ----------------------------------------------------------------------------

    def _preferred_election(self, tps: Iterable[TopicPartition], reason: str) -> int:
        ctx = self.ctx
        live = set(ctx.live_brokers)
        decide = {}
        for tp in tps:
            replicas = ctx.replicas(tp)
            if not replicas or tp not in ctx.states:
                continue

            def fn(cur: PartitionState, replicas=replicas) -> PartitionState | None:
                leader = preferred_replica_leader(replicas, cur.isr, live)
                if leader is None or leader == cur.leader:
                    return None
                return cur.new_leader_and_isr(leader, cur.isr)
            decide[tp] = fn
        return self._update_states(decide, reason) if decide else 0

    def _check_leader_imbalance(self) -> None:
        """checkAndTriggerAutoLeaderRebalance: per preferred broker, move leadership back when more
        than the configured percentage of its preferred partitions are led elsewhere."""
        ctx = self.ctx
        live = set(ctx.live_brokers)
        by_preferred: dict[int, list[TopicPartition]] = {}
        for tp in ctx.states:
            replicas = ctx.replicas(tp)
            if replicas:
                by_preferred.setdefault(replicas[0], []).append(tp)
        targets = []
        for broker, tps in by_preferred.items():
            if broker not in live:
                continue
            not_led = [tp for tp in tps if ctx.states[tp].leader != broker]
            if tps and len(not_led) * 100 > self.config.leader_imbalance_per_broker_percentage * len(tps):
                targets.extend(not_led)
        moved = self._preferred_election(targets, "leader rebalance") if targets else 0
        self._emit("imbalance_check", moved=moved)  # observable even when it moves nothing

    # topics ----------------------------------------------------------------------------------------

    def _process_topic_change(self) -> None:
        ctx = self.ctx
        kids = self.zk.get_children(paths.TOPICS, register_watch=True)
        current = set(kids[0]) if kids else set()
        added = sorted(current - set(ctx.assignments))
        removed = set(ctx.assignments) - current
        for t in removed:
            self._forget_topic(t)
        if added:
            new_tps = self._add_topics(added)
            self._initialize_partitions([tp for tp in new_tps if tp in ctx.uninitialized])

    def _forget_topic(self, topic: str) -> None:
        ctx = self.ctx
        ctx.assignments.pop(topic, None)
        for tp in [tp for tp in ctx.states if tp.topic == topic]:
            del ctx.states[tp]
        ctx.uninitialized = {tp for tp in ctx.uninitialized if tp.topic != topic}
        self.zk.unregister_data_handler(paths.topic(topic))
        self._topic_handlers.discard(topic)

    def _process_partition_modifications(self, topic: str) -> None:
        ctx = self.ctx
        got = self.zk.get_data(paths.topic(topic))
        if got is None or topic not in ctx.assignments:
            return
        a = codec.decode_topic(topic, got[0], got[1].version)
        old = ctx.assignments[topic]
        ctx.assignments[topic] = a
        if a.topic_id is None:
            self._backfill_topic_id(a)
        added = [TopicPartition(topic, p) for p in sorted(set(a.partitions) - set(old.partitions))]
        if added:
            self._load_states(added)
            self._initialize_partitions([tp for tp in added if tp in ctx.uninitialized])

    def _process_topic_deletion(self) -> None:
        ctx = self.ctx
        kids = self.zk.get_children(paths.DELETE_TOPICS, register_watch=True)
        for topic in sorted(kids[0]) if kids else []:
            if topic not in ctx.assignments and self.zk.exists(paths.topic(topic)) is not None:
                self._process_topic_change()  # marked before we saw the topic's creation
            if not self.config.delete_topic_enable or topic not in ctx.assignments:
                self.fenced.delete(paths.delete_topic(topic))
                continue
            self.fenced.delete_recursive(paths.topic(topic))
            self.fenced.delete(paths.topic_config(topic))
            self.fenced.delete(paths.delete_topic(topic))
            self._forget_topic(topic)
            ctx.deleted_topics.append(topic)
            log.info("controller %d deleted topic %s", self.broker_id, topic)
            self._emit("topic_deleted", topic=topic)

    # notifications and admin znodes -----------------------------------------------------------------

    def _delete_notifications(self, root: str, prefix: str, names: Iterable[str] | None = None) -> None:
        if names is None:
            kids = self.zk.get_children(root)
            names = [c for c in (kids[0] if kids else []) if c.startswith(prefix)]
        names = list(names)
        if names:
            self.fenced.write_many([DeleteOp(f"{root}/{n}") for n in names])

    def _read_notifications(self, root: str, prefix: str) -> list[tuple[str, bytes | None]]:
        kids = self.zk.get_children(root, register_watch=True)
        names = sorted(c for c in (kids[0] if kids else []) if c.startswith(prefix))
        return [(n, r.data) for n, r in zip(names, self.zk.get_data_many([f"{root}/{n}" for n in names]))
                if r.code == OK]

    def _process_isr_change(self) -> None:
        """Leaders (IBP < 2.7) changed ISRs themselves: refresh those states, drop the notifications."""
        items = self._read_notifications(paths.ISR_CHANGE_NOTIFICATION, paths.ISR_CHANGE_PREFIX)
        tps = set()
        for _, data in items:
            if data is not None:
                try:
                    tps.update(codec.decode_isr_change(data).partitions)
                except codec.CodecError:
                    log.warning("unreadable isr change notification")
        known = [tp for tp in tps if tp.topic in self.ctx.assignments]
        self._load_states(known)
        self._delete_notifications(paths.ISR_CHANGE_NOTIFICATION, paths.ISR_CHANGE_PREFIX, [n for n, _ in items])
        if known:
            self._emit("isr_change", partitions=len(known))

    def _process_log_dir_events(self) -> None:
        items = self._read_notifications(paths.LOG_DIR_EVENT_NOTIFICATION, paths.LOG_DIR_EVENT_PREFIX)
        for _, data in items:
            if data is not None:
                try:
                    self.ctx.log_dir_failures.append(codec.decode_log_dir_event(data).broker)
                except codec.CodecError:
                    log.warning("unreadable log dir event notification")
        self._delete_notifications(paths.LOG_DIR_EVENT_NOTIFICATION, paths.LOG_DIR_EVENT_PREFIX, [n for n, _ in items])
        if items:
            self._emit("log_dir_events", brokers=list(self.ctx.log_dir_failures[-len(items):]))

    def _process_preferred_election(self) -> None:
        got = self.zk.get_data(paths.PREFERRED_REPLICA_ELECTION)
        if got is None:
            if self.zk.exists(paths.PREFERRED_REPLICA_ELECTION) is not None:
                self._enqueue("ReplicaLeaderElection", self._process_preferred_election)  # created in between: no event will come
            return
        try:
            tps = codec.decode_preferred_replica_election(got[0]).partitions if got[0] else ()
        except codec.CodecError:
            tps = ()
        self._preferred_election([tp for tp in tps if tp in self.ctx.states], "preferred replica election")
        self.fenced.delete(paths.PREFERRED_REPLICA_ELECTION)
        self.zk.exists(paths.PREFERRED_REPLICA_ELECTION)  # re-arm for the next request

    def _process_reassignment(self) -> None:
        """Legacy znode reassignment, metadata-only: the new replica set takes effect at once (our
        nodes have no log to copy); the leader stays if it is still a live target replica."""
        ctx = self.ctx
        got = self.zk.get_data(paths.REASSIGN_PARTITIONS)
        if got is None:
            if self.zk.exists(paths.REASSIGN_PARTITIONS) is not None:
                self._enqueue("ZkPartitionReassignment", self._process_reassignment)  # created in between: no event will come
            return
        try:
            wanted = codec.decode_reassignment(got[0]).partitions if got[0] else ()
        except codec.CodecError:
            wanted = ()
        live = set(ctx.live_brokers)
        by_topic: dict[str, dict[int, tuple[int, ...]]] = {}
        for tp, replicas in wanted:
            a = ctx.assignments.get(tp.topic)
            if a is None or tp.partition not in a.partitions or not replicas or len(set(replicas)) != len(replicas):
                log.warning("ignoring invalid reassignment of %s to %s", tp, list(replicas))
                continue
            by_topic.setdefault(tp.topic, {})[tp.partition] = tuple(replicas)
        for topic, moves in by_topic.items():
            a = ctx.assignments[topic]
            parts = dict(a.partitions)
            parts.update({p: ReplicaAssignment(r) for p, r in moves.items()})
            updated = replace(a, partitions=parts, version=3)
            r = write_topic_assignment(self.fenced, updated, a.zk_version)
            if r.code != OK:
                log.warning("reassignment of %s deferred: topic znode changed (code %d)", topic, r.code)
                continue
            ctx.assignments[topic] = replace(updated, zk_version=r.result.version)
            decide = {}
            for p, target in moves.items():
                def fn(cur: PartitionState, target=target) -> PartitionState | None:
                    isr = tuple(b for b in target if b in live)
                    if not isr:
                        return None
                    leader = cur.leader if cur.leader in isr else isr[0]
                    return cur.new_leader_and_isr(leader, isr)
                decide[TopicPartition(topic, p)] = fn
            self._update_states(decide, "reassignment")
        self.fenced.delete(paths.REASSIGN_PARTITIONS)
        self.zk.exists(paths.REASSIGN_PARTITIONS)
        self._emit("reassigned", partitions=sum(len(m) for m in by_topic.values()))

    # introspection ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[TopicPartition, PartitionState]:
        ctx = self.ctx
        return dict(ctx.states) if ctx else {}

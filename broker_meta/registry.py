"""Broker registry: Kafka's checked ephemeral registration of /brokers/ids/<id> and the live-broker view.

Registration (KafkaZkClient.registerBroker / CheckedEphemeral, spec §3.2) is one multi
[create(path, null, EPHEMERAL), setData(path, json, version 0)]; the SetDataResult's czxid is the
broker epoch. On NODEEXISTS the node's ephemeralOwner decides:
- our *previous* registration's session, and the session has changed -> leftover of our expired
  session (ZOOKEEPER-2985 / KAFKA-7165): delete it and register again;
- any other session -> NodeExists (a live twin, or our crashed self not yet expired);
- the current session -> success: an earlier attempt went through before a connection loss.
A NoNode between the two reads re-runs the multi. After every new session the registration is
redone (the old ephemeral went with the old session), which gives the broker a new, larger epoch.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from kazoo.exceptions import NoNodeError
from kazoo.protocol.states import ZnodeStat

from . import codec, paths
from .errors import KeeperError, NodeExistsOwnerMismatch
from .model import BrokerRegistration, LiveBroker
from .zkclient import NODE_EXISTS, OK, CreateOp, SetDataOp, WatchEvent, ZkClient

log = logging.getLogger(__name__)


class CheckedEphemeral:
    """Creates one ephemeral node with Kafka's owner checks; remembers the session that made it."""

    def __init__(self, zk: ZkClient):
        self.zk = zk
        self.current_session_id = 0  # Kafka's currentZooKeeperSessionId

    def create(self, path: str, data: bytes) -> ZnodeStat:
        result = self.zk.multi([CreateOp(path, None, ephemeral=True), SetDataOp(path, data, 0)])
        if result.code == OK:
            stat = result.results[1]
        elif result.code == NODE_EXISTS:
            stat = self._get_after_node_exists(path, data)
        else:
            raise KeeperError(result.code, path, "while creating ephemeral")
        self.current_session_id = self.zk.session_id
        return stat

    def _get_after_node_exists(self, path: str, data: bytes) -> ZnodeStat:
        got = self.zk.get_data(path)
        if got is None:
            log.info("the ephemeral node at %s went away while reading it, attempting create again", path)
            return self.create(path, data)
        owner = got[1].ephemeralOwner
        session = self.zk.session_id
        if owner == self.current_session_id and session != self.current_session_id:
            log.info("%s is a leftover of our expired session 0x%x, re-creating it with session 0x%x",
                     path, owner, session)
            try:
                self.zk.delete(path)
            except NoNodeError:
                pass
            return self.create(path, data)
        if owner != session:
            raise NodeExistsOwnerMismatch(path, owner, session)
        return got[1]


class BrokerRegistry:
    """Registers one broker and keeps it registered across session expiry."""

    def __init__(self, zk: ZkClient, on_registered: Callable[[int], None] | None = None):
        self.zk = zk
        self._ephemeral = CheckedEphemeral(zk)
        self._info: BrokerRegistration | None = None
        self.broker_epoch = -1
        self._on_registered = on_registered
        self._lock = threading.Lock()
        self.registered = threading.Event()

    def register(self, info: BrokerRegistration) -> int:
        """Register (or re-register) and return the broker epoch (czxid of the node)."""
        with self._lock:
            stat = self._ephemeral.create(paths.broker(info.broker_id), codec.encode_broker(info))
            self._info = info
            self.broker_epoch = stat.czxid
            self.zk.register_state_handler(f"broker-registration-{info.broker_id}", self)
            self.registered.set()
        log.info("registered broker %d, broker epoch (czxid) %d", info.broker_id, self.broker_epoch)
        if self._on_registered:
            self._on_registered(self.broker_epoch)
        return self.broker_epoch

    def update(self, info: BrokerRegistration) -> None:
        """updateBrokerInfo: setData(-1) on our own ephemeral; it stays ephemeral with its owner."""
        if self._info is None or info.broker_id != self._info.broker_id:
            raise ValueError("update() needs the registered broker's id")
        self.zk.set_data(paths.broker(info.broker_id), codec.encode_broker(info), -1)
        self._info = info

    def deregister(self) -> None:
        if self._info is None:
            return
        self.zk.unregister_state_handler(f"broker-registration-{self._info.broker_id}")
        try:
            self.zk.delete(paths.broker(self._info.broker_id))
        except NoNodeError:
            pass
        self.registered.clear()
        self._info = None

    # ZkClient state handler
    def before_initializing_session(self) -> None:
        self.registered.clear()

    def after_initializing_session(self) -> None:
        if self._info is not None:
            try:
                self.register(self._info)
            except Exception:
                log.exception("re-registration of broker %d after a new session failed", self._info.broker_id)


def live_brokers(zk: ZkClient) -> list[LiveBroker]:
    """getAllBrokerAndEpochsInCluster: every registered broker with its epoch, sorted by id."""
    kids = zk.get_children(paths.BROKER_IDS)
    if kids is None:
        return []
    ids = sorted(int(c) for c in kids[0] if c.isdigit())
    out = []
    for broker_id, resp in zip(ids, zk.get_data_many([paths.broker(i) for i in ids])):
        if resp.code != OK:
            continue  # went away between the listing and the read
        try:
            reg = codec.decode_broker(broker_id, resp.data, resp.stat.czxid)
        except codec.CodecError:
            reg = None
        out.append(LiveBroker(broker_id, resp.stat.czxid, reg, resp.stat.ephemeralOwner))
    return out


class BrokerWatch:
    """Calls back with the live brokers now and after every change of /brokers/ids (Kafka's
    BrokerChangeHandler); re-reads after reconnects because kazoo drops watches on disconnect."""

    def __init__(self, zk: ZkClient, callback: Callable[[list[LiveBroker]], None]):
        self.zk = zk
        self.callback = callback
        self._name = f"broker-watch-{id(self)}"
        zk.register_child_handler(paths.BROKER_IDS, self._on_event)
        zk.register_state_handler(self._name, self)
        zk.make_sure_persistent_path_exists(paths.BROKER_IDS)
        self.refresh()

    def refresh(self) -> list[LiveBroker]:
        self.zk.get_children(paths.BROKER_IDS, register_watch=True)  # arms the child watch
        brokers = live_brokers(self.zk)
        self.callback(brokers)
        return brokers

    def _on_event(self, _: WatchEvent) -> None:
        self.refresh()

    def after_reconnect(self) -> None:
        self.refresh()

    def after_initializing_session(self) -> None:
        self.refresh()

    def close(self) -> None:
        self.zk.unregister_child_handler(paths.BROKER_IDS)
        self.zk.unregister_state_handler(self._name)

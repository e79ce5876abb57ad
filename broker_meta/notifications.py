"""Sequential notification znodes: writers and Kafka's ZkNodeChangeNotificationListener.

A writer creates a PERSISTENT_SEQUENTIAL child (`config_change_`, `isr_change_`, `log_dir_event_`,
`acl_changes_`, `token_change_`). A re-sent create after a connection loss may duplicate a
notification; Kafka accepts that because listeners only trigger re-reads.

The listener (spec §3.8): on start, on every NodeChildrenChanged and after every reconnect or new
session, getChildren (re-arming the watch), sort the names as strings, process each child whose
sequence number is above the last processed one (getData; null payloads are only logged), then
delete every child older than the purge interval by its ctime (15 minutes in Kafka).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

from kazoo.exceptions import NoNodeError

from . import codec, paths
from .model import IsrChangeNotification, LogDirEventNotification, TopicPartition
from .zkclient import WatchEvent, ZkClient

log = logging.getLogger(__name__)

CHANGE_EXPIRATION_MS = 15 * 60 * 1000


def create_sequential(zk: ZkClient, root: str, prefix: str, data: bytes | None) -> str:
    try:
        return zk.create(f"{root}/{prefix}", data, sequential=True)
    except NoNodeError:
        zk.make_sure_persistent_path_exists(root)
        return zk.create(f"{root}/{prefix}", data, sequential=True)


def create_isr_change_notification(zk: ZkClient, partitions: Iterable[TopicPartition]) -> str:
    """Written by partition leaders when IBP < 2.7 (they update ISR themselves)."""
    data = codec.encode_isr_change(IsrChangeNotification(tuple(partitions)))
    return create_sequential(zk, paths.ISR_CHANGE_NOTIFICATION, paths.ISR_CHANGE_PREFIX, data)


def create_log_dir_event_notification(zk: ZkClient, broker_id: int) -> str:
    """Written by a broker whose log directory failed."""
    data = codec.encode_log_dir_event(LogDirEventNotification(broker_id))
    return create_sequential(zk, paths.LOG_DIR_EVENT_NOTIFICATION, paths.LOG_DIR_EVENT_PREFIX, data)


def sorted_sequence_children(children: Iterable[str], prefix: str) -> list[str]:
    """Kafka sorts notification names as strings; zero padding makes that numeric order."""
    return sorted(c for c in children if c.startswith(prefix))


class NotificationListener:
    """ZkNodeChangeNotificationListener for one root and prefix."""

    def __init__(self, zk: ZkClient, root: str, prefix: str, handler: Callable[[bytes], None], *,
                 change_expiration_ms: int = CHANGE_EXPIRATION_MS, clock_ms: Callable[[], int] | None = None):
        self.zk = zk
        self.root = root
        self.prefix = prefix
        self.handler = handler
        self.change_expiration_ms = change_expiration_ms
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self.last_executed_change = -1
        self.purged: list[str] = []
        self._name = f"notifications-{root}-{id(self)}"

    def start(self) -> None:
        self.zk.make_sure_persistent_path_exists(self.root)
        self.zk.register_child_handler(self.root, self._on_event)
        self.zk.register_state_handler(self._name, self)
        self.process_notifications()

    def close(self) -> None:
        self.zk.unregister_child_handler(self.root)
        self.zk.unregister_state_handler(self._name)

    def _on_event(self, _: WatchEvent) -> None:
        self.process_notifications()

    def after_reconnect(self) -> None:
        self.process_notifications()

    def after_initializing_session(self) -> None:
        self.process_notifications()

    def process_notifications(self) -> None:
        kids = self.zk.get_children(self.root, register_watch=True)
        if kids is None:
            return
        names = sorted_sequence_children(kids[0], self.prefix)
        for name in names:
            seq = paths.sequence_number(name, self.prefix)
            if seq <= self.last_executed_change:
                continue
            got = self.zk.get_data(f"{self.root}/{name}")
            if got is None:
                pass  # purged by someone else meanwhile
            elif got[0] is None:
                log.warning("read null data from %s/%s", self.root, name)
            else:
                try:
                    self.handler(got[0])
                except Exception:
                    log.exception("failed to process notification %s/%s", self.root, name)
            self.last_executed_change = seq
        self.purge_obsolete(names)

    def purge_obsolete(self, names: list[str]) -> None:
        now = self.clock_ms()
        for name in names:
            path = f"{self.root}/{name}"
            got = self.zk.get_data(path)
            if got is not None and now - got[1].ctime > self.change_expiration_ms:
                try:
                    self.zk.delete(path)
                    self.purged.append(name)
                except NoNodeError:
                    pass  # another broker purged it first

"""Watches as ZooKeeper 3.6+ keeps them: two tables (data, child), each path -> {watcher: mode}.

Modes: STANDARD (one-shot), PERSISTENT, PERSISTENT_RECURSIVE (addWatch puts persistent watches in
both tables). Triggering a path walks the path and, only when recursive watches exist, its ancestors:
a recursive watch fires for every event but NodeChildrenChanged anywhere below it; any other watch
fires only on its own path, and a standard one is removed as it fires. A watcher (a connection id)
receives one event per trigger; delete suppresses duplicates across the data and child tables.
Fired events are appended to `fired` as (watcher, event_type, path, acl) for the server to deliver;
`acl` is the ACL of the node the event is about (the parent's for NodeChildrenChanged), because
ZooKeeper (3.8.4, CVE-2024-23944) delivers an event only to a watcher that may READ that node —
the watch is used up either way.
"""
from __future__ import annotations

from coord.core.paths import ancestors
from coord.jute.protocol import EventType

STANDARD = 0
PERSISTENT = 1
PERSISTENT_RECURSIVE = 2

NodeCreated = int(EventType.NodeCreated)
NodeDeleted = int(EventType.NodeDeleted)
NodeDataChanged = int(EventType.NodeDataChanged)
NodeChildrenChanged = int(EventType.NodeChildrenChanged)


class WatchTable:
    __slots__ = ("table", "by_watcher", "recursive")

    def __init__(self):
        self.table: dict[str, dict[int, int]] = {}
        self.by_watcher: dict[int, set[str]] = {}
        self.recursive = 0

    def add(self, path: str, watcher: int, mode: int = STANDARD) -> None:
        ws = self.table.get(path)
        if ws is None:
            ws = self.table[path] = {}
        old = ws.get(watcher)
        if old == PERSISTENT_RECURSIVE:
            self.recursive -= 1
        ws[watcher] = mode
        if mode == PERSISTENT_RECURSIVE:
            self.recursive += 1
        self.by_watcher.setdefault(watcher, set()).add(path)

    def remove(self, path: str, watcher: int) -> bool:
        ws = self.table.get(path)
        if not ws or watcher not in ws:
            return False
        if ws.pop(watcher) == PERSISTENT_RECURSIVE:
            self.recursive -= 1
        if not ws:
            del self.table[path]
        paths = self.by_watcher.get(watcher)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self.by_watcher[watcher]
        return True

    def contains(self, path: str, watcher: int) -> bool:
        ws = self.table.get(path)
        return bool(ws) and watcher in ws

    def remove_watcher(self, watcher: int) -> None:
        for path in self.by_watcher.pop(watcher, ()):
            ws = self.table.get(path)
            if ws is not None and watcher in ws:
                if ws.pop(watcher) == PERSISTENT_RECURSIVE:
                    self.recursive -= 1
                if not ws:
                    del self.table[path]

    def trigger(self, path: str, etype: int, suppress=None) -> set[int]:
        fired: set[int] = set()
        table = self.table
        ws = table.get(path)
        if ws:
            for w, mode in list(ws.items()):
                if mode == PERSISTENT_RECURSIVE:
                    if etype != NodeChildrenChanged:
                        fired.add(w)
                else:
                    fired.add(w)
                    if mode == STANDARD:
                        del ws[w]
                        paths = self.by_watcher.get(w)
                        if paths is not None:
                            paths.discard(path)
                            if not paths:
                                del self.by_watcher[w]
            if not ws:
                del table[path]
        if self.recursive and etype != NodeChildrenChanged:
            for anc in ancestors(path):
                ws = table.get(anc)
                if ws:
                    for w, mode in ws.items():
                        if mode == PERSISTENT_RECURSIVE:
                            fired.add(w)
        if suppress:
            fired -= suppress
        return fired

    def count(self) -> int:
        return sum(len(v) for v in self.table.values())


class WatchManager:
    """Both tables plus the outbox of fired events."""

    __slots__ = ("data", "child", "fired")

    def __init__(self):
        self.data = WatchTable()
        self.child = WatchTable()
        self.fired: list[tuple[int, int, str, tuple | None]] = []

    def armed(self) -> bool:
        """Whether the tree must report changes: only if any watch is set at all (a subclass that
        observes every change says always)."""
        return bool(self.data.table or self.child.table)

    def _emit(self, watchers, etype: int, path: str, acl=None) -> None:
        for w in watchers:
            self.fired.append((w, etype, path, acl))

    def node_created(self, path: str, parent: str, acl=None, parent_acl=None) -> None:
        if self.data.table or self.data.recursive:
            self._emit(self.data.trigger(path, NodeCreated), NodeCreated, path, acl)
        if self.child.table:
            self._emit(self.child.trigger(parent, NodeChildrenChanged), NodeChildrenChanged, parent, parent_acl)

    def node_deleted(self, path: str, parent: str, acl=None, parent_acl=None) -> None:
        if self.data.table or self.child.table:
            done = self.data.trigger(path, NodeDeleted)
            self._emit(done, NodeDeleted, path, acl)
            self._emit(self.child.trigger(path, NodeDeleted, done), NodeDeleted, path, acl)
            self._emit(self.child.trigger(parent, NodeChildrenChanged), NodeChildrenChanged, parent, parent_acl)

    def node_data_changed(self, path: str, acl=None) -> None:
        if self.data.table:
            self._emit(self.data.trigger(path, NodeDataChanged), NodeDataChanged, path, acl)

    def add_persistent(self, path: str, watcher: int, recursive: bool) -> None:
        mode = PERSISTENT_RECURSIVE if recursive else PERSISTENT
        self.data.add(path, watcher, mode)
        self.child.add(path, watcher, mode)

    def remove_watcher(self, watcher: int) -> None:
        self.data.remove_watcher(watcher)
        self.child.remove_watcher(watcher)

    def watcher_paths(self, watcher: int) -> set[str]:
        return self.data.by_watcher.get(watcher, set()) | self.child.by_watcher.get(watcher, set())

    def count(self) -> int:
        return self.data.count() + self.child.count()

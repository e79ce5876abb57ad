"""Request -> txn, against the tree plus the changes still in flight (ZooKeeper's PrepRequestProcessor).

Writes are pipelined: many txns can be prepared before the first is committed, so every check
(existence, versions, ACLs, child counts, sequence numbers) reads the newest outstanding Change for
a path before the tree. A Change is dropped once the txn that made it is applied. A multi prepares
its ops in order over the same overlay; if one fails, every Change it made is rolled back and the
multi becomes a list of per-op error codes with no txn at all.
"""
from __future__ import annotations

from collections import deque

from coord.core import acl as aclmod
from coord.core.datatree import (CONTAINER_OWNER, TTL_MAX, DataTree, acl_records, is_session_owner,
                                 ttl_owner)
from coord.core.javaorder import hashset_clone_order
from coord.core.quota import MalformedLimits, QuotaEnforcer, QuotaExceeded
from coord.core.paths import SPECIAL, CONFIG, invalid_reason, parent_of
from coord.jute import records as R
from coord.jute.protocol import Err, OpCode, Perms


_CREATE, _WRITE, _DELETE = int(Perms.CREATE), int(Perms.WRITE), int(Perms.DELETE)
_OPEN = aclmod.OPEN_ACL_UNSAFE   # every permission for everyone: no check needed


class PrepError(Exception):
    def __init__(self, err: Err, path: str | None = None):
        super().__init__(f"{err.name} {path or ''}")
        self.err = err
        self.path = path


class Change:
    """What prep needs to know of one path as of the newest outstanding txn touching it."""

    __slots__ = ("zxid", "path", "exists", "version", "cversion", "aversion", "owner", "nchildren", "acl",
                 "data")

    def __init__(self, zxid, path, exists, version=0, cversion=0, aversion=0, owner=0, nchildren=0, acl=(),
                 data=None):
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.owner = owner
        self.nchildren = nchildren
        self.acl = acl
        self.data = data   # the node's data as of this change (checkQuota's lastData)

    def copy(self, zxid: int) -> "Change":
        return Change(zxid, self.path, self.exists, self.version, self.cversion, self.aversion,
                      self.owner, self.nchildren, self.acl, self.data)


MULTI_OPS = {int(OpCode.create): R.CreateRequest, int(OpCode.create2): R.CreateRequest,
             int(OpCode.createTTL): R.CreateTTLRequest, int(OpCode.createContainer): R.CreateRequest,
             int(OpCode.delete): R.DeleteRequest, int(OpCode.setData): R.SetDataRequest,
             int(OpCode.check): R.CheckVersionRequest}


class Prep:
    def __init__(self, tree: DataTree, *, extended_types: bool = False, quota: QuotaEnforcer | None = None):
        self.tree = tree
        self.extended_types = extended_types
        self.quota = quota   # enforceQuota: hard limits checked on create and setData
        self.outstanding: dict[str, Change] = {}
        self.changes: deque[Change] = deque()

    # -- the overlay ----------------------------------------------------------------------------
    def record(self, path: str) -> Change | None:
        c = self.outstanding.get(path)
        if c is not None:
            return c if c.exists else None
        n = self.tree.nodes.get(path)
        if n is None:
            return None
        return Change(0, path, True, n.version, n.cversion, n.aversion, n.owner,
                      len(n.children) if n.children else 0, n.acl, n.data)

    def _require(self, path: str) -> Change:
        c = self.record(path)
        if c is None:
            raise PrepError(Err.NONODE, path)
        return c

    @staticmethod
    def _own(c: Change, zxid: int) -> Change:
        """c as a Change of txn zxid: one read fresh from the tree (zxid 0, shared with no one) is
        taken over; an outstanding one is copied."""
        if c.zxid:
            return c.copy(zxid)
        c.zxid = zxid
        return c

    def _add(self, c: Change) -> None:
        self.changes.append(c)
        self.outstanding[c.path] = c

    def applied(self, zxid: int) -> None:
        """Forget Changes made by txns up to zxid: the tree now shows them."""
        changes = self.changes
        out = self.outstanding
        while changes and changes[0].zxid <= zxid:
            c = changes.popleft()
            if out.get(c.path) is c:
                del out[c.path]

    def reset(self) -> None:
        self.outstanding.clear()
        self.changes.clear()

    # -- checks -----------------------------------------------------------------------------------
    @staticmethod
    def _check_acl(acl, perm: int, auth, path) -> None:
        if not aclmod.check(acl, perm, auth):
            raise PrepError(Err.NOAUTH, path)

    @staticmethod
    def _validate(path) -> None:
        if invalid_reason(path) is not None:
            raise PrepError(Err.BADARGUMENTS, path)

    @staticmethod
    def _parent_for_delete(path) -> str:
        if path is None:
            raise PrepError(Err.MARSHALLINGERROR)  # ZooKeeper: NullPointerException
        if not path or "/" not in path or "\0" in path or path in SPECIAL:
            raise PrepError(Err.BADARGUMENTS, path)
        return parent_of(path)

    @staticmethod
    def _version(current: int, expected: int, path) -> int:
        if expected != -1 and expected != current:
            raise PrepError(Err.BADVERSION, path)
        return current + 1

    def _check_quota(self, path: str, bytes_diff: int, count_diff: int) -> None:
        try:
            self.quota.check(path, bytes_diff, count_diff)
        except QuotaExceeded as e:
            raise PrepError(Err.QUOTAEXCEEDED, e.root) from None
        except MalformedLimits:
            raise PrepError(Err.MARSHALLINGERROR, path) from None  # ZooKeeper: NumberFormatException

    # -- one op -----------------------------------------------------------------------------------
    def op(self, type_: int, req, session_id: int, auth, zxid: int, time: int):
        """Prepare one write op; returns its txn record (and records its Changes) or raises PrepError."""
        if type_ in (1, 15, 19, 21):
            return self._create(type_, req, session_id, auth, zxid, time)
        if type_ == 5:
            path = req.path
            c = self.outstanding.get(path)
            if c is None:
                node = self.tree.nodes.get(path)
                if node is None:
                    self._validate(path)  # a node in the tree has a valid path: check only a miss
                    raise PrepError(Err.NONODE, path)
                c = Change(zxid, path, True, node.version, node.cversion, node.aversion, node.owner,
                           len(node.children) if node.children else 0, node.acl, node.data)
            elif not c.exists:
                self._validate(path)
                raise PrepError(Err.NONODE, path)
            else:
                c = c.copy(zxid)
            if c.acl is not _OPEN and not aclmod.check(c.acl, _WRITE, auth):
                raise PrepError(Err.NOAUTH, path)
            if self.quota is not None:
                self._check_quota(path, _len(req.data) - _len(c.data), 0)
            expected = req.version
            if expected != -1 and expected != c.version:
                raise PrepError(Err.BADVERSION, path)
            c.version += 1
            c.data = req.data
            self.changes.append(c)
            self.outstanding[path] = c
            return R.SetDataTxn(path, req.data, c.version)
        if type_ == 2:
            path = req.path
            parent_path = self._parent_for_delete(path)  # ZooKeeper does not validate the rest
            parent = self._require(parent_path)
            if parent.acl is not _OPEN and not aclmod.check(parent.acl, _DELETE, auth):
                raise PrepError(Err.NOAUTH, path)
            c = self.outstanding.get(path)
            if c is None:
                node = self.tree.nodes.get(path)
                if node is None:
                    raise PrepError(Err.NONODE, path)
                version, nchildren = node.version, len(node.children) if node.children else 0
            elif c.exists:
                version, nchildren = c.version, c.nchildren
            else:
                raise PrepError(Err.NONODE, path)
            expected = req.version
            if expected != -1 and expected != version:
                raise PrepError(Err.BADVERSION, path)
            if nchildren > 0:
                raise PrepError(Err.NOTEMPTY, path)
            parent = self._own(parent, zxid)
            parent.nchildren -= 1
            changes = self.changes
            out = self.outstanding
            changes.append(parent)
            out[parent_path] = parent
            c = Change(zxid, path, False)
            changes.append(c)
            out[path] = c
            return R.DeleteTxn(path)
        if type_ == 7:
            path = req.path
            self._validate(path)
            try:
                acl = aclmod.fixup(req.acl, auth)
            except aclmod.InvalidACL:
                raise PrepError(Err.INVALIDACL, path) from None
            node = self._require(path)
            self._check_acl(node.acl, Perms.ADMIN, auth, path)
            newv = self._version(node.aversion, req.version, path)
            node = node.copy(zxid)
            node.aversion = newv
            node.acl = acl
            self._add(node)
            return R.SetACLTxn(path, acl_records(acl), newv)
        if type_ == 13:
            path = req.path
            self._validate(path)
            node = self._require(path)
            self._check_acl(node.acl, Perms.READ, auth, path)
            return R.CheckVersionTxn(path, self._version(node.version, req.version, path))
        if type_ == 20:  # deleteContainer: the server's own cleanup of empty containers / expired TTLs
            path = req.path
            parent_path = self._parent_for_delete(path)
            node = self._require(path)
            if node.nchildren > 0:
                raise PrepError(Err.NOTEMPTY, path)
            if is_session_owner(node.owner) or node.owner == 0:
                raise PrepError(Err.BADVERSION, path)
            parent = self._require(parent_path).copy(zxid)
            parent.nchildren -= 1
            self._add(parent)
            self._add(Change(zxid, path, False))
            return R.DeleteTxn(path)
        raise PrepError(Err.UNIMPLEMENTED)

    def _create(self, type_: int, req, session_id: int, auth, zxid: int, time: int):
        flags = req.flags
        # As ZooKeeper: the opcode decides the node type (createContainer makes a container whatever
        # the mode; create with CONTAINER mode makes a plain persistent node); the mode still decides
        # sequential naming and the TTL checks.
        if type_ == 21 or not 0 <= flags <= 4:  # otherwise no TTL is involved and every check passes
            ttl = req.ttl if type_ == 21 else -1
            if not 0 <= flags <= 6:
                raise PrepError(Err.BADARGUMENTS, req.path)
            is_ttl = flags in (5, 6)
            if is_ttl and not self.extended_types:
                raise PrepError(Err.UNIMPLEMENTED, req.path)
            if is_ttl:
                if not 0 < ttl <= TTL_MAX:
                    raise PrepError(Err.BADARGUMENTS, req.path)
            elif ttl >= 0:
                raise PrepError(Err.BADARGUMENTS, req.path)
            if is_ttl and type_ != 21:
                raise PrepError(Err.BADARGUMENTS, req.path)
            if type_ == 21 and not is_ttl:
                # ZooKeeper 3.8 refuses this when ttl >= 0 and crashes its server when ttl < 0.
                raise PrepError(Err.BADARGUMENTS, req.path)
        path = req.path
        if path is None:
            raise PrepError(Err.MARSHALLINGERROR)  # ZooKeeper: NullPointerException
        i = path.rfind("/")
        if i < 0 or "\0" in path:
            raise PrepError(Err.BADARGUMENTS, path)
        parent_path = path[:i] or "/"
        try:
            acl = aclmod.fixup(req.acl, auth)
        except aclmod.InvalidACL:
            raise PrepError(Err.INVALIDACL, path) from None
        # The parent as of the newest outstanding txn (Prep.record, inlined: this is the hot path).
        parent = self.outstanding.get(parent_path)
        if parent is not None:
            if not parent.exists:
                raise PrepError(Err.NONODE, parent_path)
            p_acl, p_cversion, p_owner = parent.acl, parent.cversion, parent.owner
        else:
            node = self.tree.nodes.get(parent_path)
            if node is None:
                raise PrepError(Err.NONODE, parent_path)
            p_acl, p_cversion, p_owner = node.acl, node.cversion, node.owner
        if p_acl is not _OPEN and not aclmod.check(p_acl, _CREATE, auth):
            raise PrepError(Err.NOAUTH, path)
        if flags in (2, 3, 6):
            path = f"{path}{p_cversion:010d}"
        if invalid_reason(path) is not None:
            raise PrepError(Err.BADARGUMENTS, path)
        c = self.outstanding.get(path)
        if c.exists if c is not None else path in self.tree.nodes:
            raise PrepError(Err.NODEEXISTS, path)
        if is_session_owner(p_owner):
            raise PrepError(Err.NOCHILDRENFOREPHEMERALS, path)
        if self.quota is not None:
            self._check_quota(path, _len(req.data), 1)
        new_cversion = p_cversion + 1
        ephemeral = flags in (1, 3)
        if type_ == 19:
            txn = R.CreateContainerTxn(path, req.data, acl_records(acl), new_cversion)
            owner = CONTAINER_OWNER
        elif type_ == 21:
            txn = R.CreateTTLTxn(path, req.data, acl_records(acl), new_cversion, ttl)
            owner = ttl_owner(ttl)
        else:
            txn = R.CreateTxn(path, req.data, acl_records(acl), ephemeral, new_cversion)
            owner = session_id if ephemeral else 0
        if parent is not None:
            parent = parent.copy(zxid)
            parent.nchildren += 1
            parent.cversion = new_cversion
        else:
            parent = Change(zxid, parent_path, True, node.version, new_cversion, node.aversion, p_owner,
                            len(node.children) + 1 if node.children else 1, p_acl)
        changes = self.changes
        out = self.outstanding
        changes.append(parent)
        out[parent_path] = parent
        c = Change(zxid, path, True, 0, 0, 0, owner, 0, acl, req.data)
        changes.append(c)
        out[path] = c
        return txn

    # -- multi ------------------------------------------------------------------------------------
    def multi(self, ops, session_id: int, auth, zxid: int, time: int) -> R.MultiTxn:
        """ops: [(type, request)] -> one MultiTxn. On failure ZooKeeper's shape: the ops before the
        failing one keep their txns, it becomes ErrorTxn(code), the rest ErrorTxn(-2); applying such a
        multi changes nothing and reports 0 / code / -2, and every Change it made is rolled back."""
        saved = {}
        for _, req in ops:
            path = req.path
            if path and path.startswith("/"):
                for p in (path, parent_of(path)):
                    if p not in saved:
                        saved[p] = self.outstanding.get(p)
        mark = len(self.changes)
        txns = []
        for i, (type_, req) in enumerate(ops):
            try:
                txn = self.op(type_, req, session_id, auth, zxid, time)
            except PrepError as e:
                unexpected = e.err == Err.MARSHALLINGERROR
                while len(self.changes) > mark:
                    c = self.changes.pop()
                    if self.outstanding.get(c.path) is c:
                        del self.outstanding[c.path]
                for p, c in saved.items():
                    if c is not None:
                        self.outstanding[p] = c
                if unexpected:
                    raise  # not a KeeperException in ZooKeeper: the whole multi fails
                txns.append(R.Txn(-1, R.ErrorTxn(int(e.err)).encode()))
                rest = R.Txn(-1, R.ErrorTxn(int(Err.RUNTIMEINCONSISTENCY)).encode())
                txns.extend(rest for _ in range(len(ops) - i - 1))
                return R.MultiTxn(txns)
            txns.append(R.Txn(type_, txn.encode()))
        return R.MultiTxn(txns)

    # -- sessions ---------------------------------------------------------------------------------
    def close_session(self, session_id: int, zxid: int) -> R.CloseSessionTxn:
        """The ephemerals the session will own once every outstanding txn lands, marked deleted."""
        nodes = self.tree.nodes
        es = {p: nodes[p].czxid for p in self.tree.ephemerals.get(session_id, ()) if p in nodes}
        for c in self.changes:
            if not c.exists:
                es.pop(c.path, None)
            elif c.owner == session_id:
                es[c.path] = c.zxid
        # ZooKeeper deletes them in the order of a HashSet clone (and fires watches in that order).
        order = hashset_clone_order(es.items())
        for p in order:
            parent = self.record(parent_of(p))
            if parent is not None:
                parent = parent.copy(zxid)
                parent.nchildren -= 1
                self._add(parent)
            self._add(Change(zxid, p, False))
        return R.CloseSessionTxn(order)


def _len(data) -> int:
    return len(data) if data else 0


def header(session_id: int, cxid: int, zxid: int, time: int, type_: int) -> R.TxnHeader:
    return R.TxnHeader(session_id, cxid, zxid, time, type_)


__all__ = ["Prep", "PrepError", "Change", "MULTI_OPS", "header", "CONFIG"]

"""ZooKeeper data dir -> coord data dir: newest valid snapshot, log replay with ZooKeeper's own
fuzzy-snapshot rules, a check against ZooKeeper's tree digest, one coord snapshot written atomically.

Replay follows FileTxnSnapLog: txns after the snapshot's zxid are applied in order, failures that a
fuzzy snapshot causes (NONODE, NODEEXISTS) are ignored, and a create that finds its node already
there still sets the parent's cversion and pzxid. Stat fields, ACLs, ephemeral owners and sessions
(id -> timeout) come across unchanged (ZooKeeper's stored cversion is the count of child creations,
which is what coord's Node.cversion holds), so clients keep their sessions: coord derives session
passwords the way ZooKeeper does.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from coord.core import acl as aclmod
from coord.core.datatree import DataTree, Node
from coord.core.paths import parent_of
from coord.core.zkpeer.digest import node_digest as zk_node_digest  # noqa: F401  (re-exported)
from coord.core.zkpeer.digest import tree_digest
from coord.zkimport.zkfiles import ZkFormatError, list_files, read_log, read_snapshot

log = logging.getLogger("coord.zkimport")

_MASK64 = (1 << 64) - 1


@dataclass
class ImportResult:
    snapshot: Path | None = None
    snapshot_zxid: int = 0
    logs: list[Path] = field(default_factory=list)
    replayed: int = 0
    last_zxid: int = 0
    nodes: int = 0
    sessions: int = 0
    skipped_snapshots: list[str] = field(default_factory=list)
    digest_check: str = "not available"
    output: Path | None = None
    warnings: list[str] = field(default_factory=list)
    tree: DataTree | None = None


def zk_digest(tree: DataTree) -> int:
    return tree_digest(tree)


def find_version_dir(d: Path) -> Path:
    d = Path(d)
    if (d / "version-2").is_dir():
        return d / "version-2"
    return d


def build_tree(snap, progress=None) -> DataTree:
    tree = DataTree()
    acls = {k: aclmod.intern(tuple(v)) for k, v in snap.acls.items()}
    acls[-1] = aclmod.OPEN_ACL_UNSAFE
    load = tree.load_node
    for i, (path, data, acl_id, st) in enumerate(snap.nodes):
        czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid = st
        acl = acls.get(acl_id)
        if acl is None:
            raise ZkFormatError(f"{snap.path}: {path} refers to ACL {acl_id}, not in the snapshot")
        n = Node(data, acl, czxid, ctime, owner)
        n.mzxid = mzxid
        n.mtime = mtime
        n.pzxid = pzxid
        n.version = version
        n.cversion = cversion
        n.aversion = aversion
        if path != "/" and parent_of(path) not in tree.nodes:
            raise ZkFormatError(f"{snap.path}: {path} comes before its parent")
        load(path, n)
        if progress is not None and i % 10000 == 0:
            progress(10000)
    tree.sessions.update(snap.sessions)
    tree.last_zxid = snap.zxid
    return tree


def _apply_zk(tree: DataTree, hdr, txn) -> None:
    res = tree.apply(hdr, txn)
    if hdr.type == 1 and res.err == -110:  # create found its node: fix the parent up as ZooKeeper does
        parent_path = parent_of(txn.path)
        parent = tree.nodes.get(parent_path)
        if parent is not None:
            cv = txn.parentCVersion
            if cv == -1:
                cv = parent.cversion + 1
            if cv > parent.cversion:
                parent.cversion = cv
                parent.pzxid = hdr.zxid
                tree._update_digest(parent_path, parent)


def import_zookeeper(zk_dir: Path, out_dir: Path | None = None, *, zk_log_dir: Path | None = None,
                     force: bool = False, progress=None, write: bool = True) -> ImportResult:
    """Read ZooKeeper's files under zk_dir (its dataDir or dataDir/version-2) and write a coord
    data dir at out_dir holding one snapshot of the same tree. Raises ZkFormatError."""
    from coord.aio.datadir import log_dir_of, snap_dir_of
    from coord.aio.snapshots import list_snapshots, write_snapshot_bytes
    from coord.aio.txnlog import list_logs
    from coord.core import snapformat

    res = ImportResult()
    snap_dir = find_version_dir(zk_dir)
    log_dir = find_version_dir(zk_log_dir) if zk_log_dir else snap_dir
    if not snap_dir.is_dir():
        raise ZkFormatError(f"{zk_dir}: no such directory")
    snaps = list_files(snap_dir, "snapshot")
    logs = [(z, p) for z, p in list_files(log_dir, "log")]
    if not snaps and not logs:
        raise ZkFormatError(f"{snap_dir}: no ZooKeeper snapshot.* or log.* files here")
    snap = None
    for z, p in reversed(snaps):
        try:
            snap = read_snapshot(p)
            break
        except (ZkFormatError, OSError) as e:
            res.skipped_snapshots.append(f"{p}: {e}")
            log.warning("skipping ZooKeeper snapshot %s: %s", p, e)
    if snap is None:
        why = "".join(f"; {s}" for s in res.skipped_snapshots)
        if logs and logs[0][0] > 1:
            raise ZkFormatError(f"{snap_dir}: no valid snapshot and the logs start at zxid 0x{logs[0][0]:x}, "
                                f"not at the beginning: the tree cannot be rebuilt{why}")
        if snaps and not logs:
            raise ZkFormatError(f"{snap_dir}: no snapshot could be read and there are no logs to rebuild "
                                f"the tree from{why}")
        tree = DataTree()
    else:
        res.snapshot, res.snapshot_zxid = snap.path, snap.zxid
        tree = build_tree(snap, progress)
    start_zxid = res.snapshot_zxid
    first_idx = 0
    for i, (z, _) in enumerate(logs):
        if z <= start_zxid:
            first_idx = i
    prev = start_zxid
    last_digest = None
    for i, (z, p) in enumerate(logs[first_idx:]):
        zl = read_log(p)
        res.logs.append(p)
        for e in zl.entries:
            hz = e.hdr.zxid
            if hz <= prev:
                continue
            if prev and hz != prev + 1 and (hz >> 32) == (prev >> 32):
                res.warnings.append(f"{p}: zxid jumps from 0x{prev:x} to 0x{hz:x}")
            _apply_zk(tree, e.hdr, e.txn)
            prev = hz
            res.replayed += 1
            last_digest = (hz, e.digest) if e.digest is not None else None
            if progress is not None and res.replayed % 10000 == 0:
                progress(10000)
        if zl.torn is not None:
            newest = i == len(logs) - first_idx - 1
            msg = f"{p}: {zl.torn}; txns after zxid 0x{prev:x} in this file are ignored"
            if not newest:
                res.warnings.append(msg + " (not the newest log: later files may not follow on)")
            else:
                res.warnings.append(msg)
    tree.last_zxid = max(tree.last_zxid, prev)
    res.last_zxid = tree.last_zxid
    res.nodes = tree.node_count()
    res.sessions = len(tree.sessions)
    ours = zk_digest(tree)
    if last_digest is not None and last_digest[0] == tree.last_zxid:
        theirs = last_digest[1][1] & _MASK64
        res.digest_check = ("verified: matches ZooKeeper's digest 0x%x at zxid 0x%x" % (theirs, tree.last_zxid)
                            if theirs == ours else
                            "MISMATCH: ZooKeeper's digest 0x%x at zxid 0x%x, imported tree 0x%x"
                            % (theirs, tree.last_zxid, ours))
    elif snap is not None and snap.digest is not None and snap.digest[0] == tree.last_zxid and snap.digest[0]:
        theirs = snap.digest[2] & _MASK64
        res.digest_check = ("verified: matches the snapshot's digest" if theirs == ours else
                            "MISMATCH: snapshot digest 0x%x, imported tree 0x%x" % (theirs, ours))
    res.tree = tree
    if not write:
        return res
    out_snap = snap_dir_of(out_dir)
    out_log = log_dir_of(out_dir)
    if not force and (list_snapshots(out_snap) or list_logs(out_log)):
        raise ZkFormatError(f"{out_dir}: already holds a coord data dir; use --force to replace it")
    if force:
        for _, p in list_snapshots(out_snap) + list_logs(out_log):
            p.unlink()
    data = snapformat.encode_tree(tree)
    res.output = write_snapshot_bytes(out_snap, tree.last_zxid, data)
    return res

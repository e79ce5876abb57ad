"""The data directory: where files live, how a server recovers from them, and what it may delete.

Layout (as ZooKeeper's): snapshots in <dataDir>/version-2/snapshot.<zxid hex>, logs in
<dataLogDir or dataDir>/version-2/log.<first zxid hex>.

Recovery rules (`recover`):
1. Unfinished snapshot temp files (and a log being recycled, txnlog.SPARE_TMP) are removed. The newest snapshot that loads and verifies is used;
   one that does not (truncated, empty, bad checksum, wrong digest) is renamed *.corrupt with a log
   line, and the previous one is tried.
2. The logs from the one holding snapshot zxid + 1 onwards are replayed. Every replayed zxid must
   follow the one before it (next counter, or counter 1 of a later epoch), starting right after the
   snapshot: a gap means txns the server once had are missing, so it refuses to start, naming the
   files, rather than serve a tree older than its log claims.
3. With no usable snapshot the logs must start at the first txn ever (counter 1); otherwise it
   refuses (ZOOKEEPER-2325: never an empty tree in front of logs that do not begin at the start).
4. Damage in a log: if no intact record with a higher zxid follows it, it is a torn tail from a crash
   (never acknowledged, since acks wait for fsync) and the file is cut there with a log line. If
   intact records follow, the log has a hole and it refuses, naming the file and offsets. A newest
   log file whose header is missing or all zeros (a crash while creating it) is removed.
   Files are only changed once the whole recovery has succeeded.

Retention (`purge`): keep the newest `retain` snapshots (at least 3) and the logs they need: the log
holding the oldest kept snapshot's zxid + 1 and every later one. Corrupt and older files go; the
newest logs that go become new log files' space (txnlog.recycle_log, two spares at most).
"""
from __future__ import annotations

import gc
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from coord.aio import stalls
from coord.aio.snapshots import list_snapshots, read_snapshot, remove_temp_files
from coord.aio.txnlog import SPARE_TMP, fsync_dir, list_logs, recycle_log
from coord.core import logformat, snapformat
from coord.core.datatree import DataTree
from coord import runtime

log = logging.getLogger("coord.datadir")

VERSION_DIR = "version-2"


class RecoveryError(Exception):
    """The data directory cannot be trusted; the message names the files and what to do."""


def snap_dir_of(data_dir: Path) -> Path:
    return Path(data_dir) / VERSION_DIR


def log_dir_of(data_dir: Path, data_log_dir: Path | None = None) -> Path:
    return Path(data_log_dir or data_dir) / VERSION_DIR


def _hex(z: int | None) -> str:
    return "none" if z is None else f"0x{z:x}"


@dataclass
class Recovered:
    tree: DataTree
    snapshot_zxid: int = 0
    snapshot_path: Path | None = None
    last_zxid: int = 0
    replayed: int = 0
    snapshot_config: bytes = b""       # /zookeeper/config as the snapshot had it (committed)
    reconfigs: list = field(default_factory=list)   # (zxid, config data) replayed from the log
    log_files: list[Path] = field(default_factory=list)
    corrupt_snapshots: list[Path] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    snapshot_s: float = 0.0
    replay_s: float = 0.0
    # the newest replayed records (at most `keep`), and the zxid just before the first of them: an
    # ensemble member's committed window, so that as a leader it can DIFF a learner after a restart
    recent: list = field(default_factory=list)
    recent_base: int = 0


def recover(snap_dir: Path, log_dir: Path, *, progress=None, freeze_gc: bool = True, keep: int = 0) -> Recovered:
    """Rebuild the tree from the newest valid snapshot plus the logs; see the module docstring."""
    snap_dir = Path(snap_dir)
    log_dir = Path(log_dir)
    snap_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    remove_temp_files(snap_dir)
    (log_dir / SPARE_TMP).unlink(missing_ok=True)   # a crash while recycling a log (txnlog.recycle_log)
    with runtime.cycle_collector_paused():
        rec = _recover(snap_dir, log_dir, progress, keep)
    if freeze_gc:
        gc.collect()
        runtime.freeze_gc()  # the loaded tree is long-lived: keep it out of every later collection
        runtime.release_free_memory()  # the load's transient buffers: see release_free_memory
    return rec


def zookeeper_file_message(files: list[Path], data_dir: Path) -> str | None:
    """Why `files` cannot be read, if one of them is Apache ZooKeeper's (magic ZKSN/ZKLG), else None:
    a ZooKeeper data dir given to coord is a mistake to name, not corruption to report."""
    for p in files:
        with open(p, "rb") as f:
            magic = f.read(4)
        if magic in (b"ZKSN", b"ZKLG"):
            return (f"{p} is an Apache ZooKeeper file: this is a ZooKeeper data directory. Convert it with "
                    f"`coord data import-zookeeper {data_dir} NEW_DIR` and point dataDir at NEW_DIR.")
    return None


def _recover(snap_dir: Path, log_dir: Path, progress, keep: int = 0) -> Recovered:
    t0 = time.monotonic()
    snaps = list_snapshots(snap_dir)
    logs = list_logs(log_dir)
    msg = zookeeper_file_message([p for _, p in snaps + logs], snap_dir.parent)
    if msg:
        raise RecoveryError(msg)
    tree = None
    snap_zxid = 0
    snap_path = None
    corrupt: list[tuple[Path, str]] = []
    for zxid, path in snaps:
        try:
            tree, info = read_snapshot(path, progress)
        except (snapformat.SnapshotError, OSError) as e:
            log.warning("snapshot %s is not usable (%s); trying the previous one", path, e)
            corrupt.append((path, str(e)))
            continue
        snap_zxid, snap_path = info.zxid, path
        log.info("loaded snapshot %s: %d znodes, %d sessions, zxid 0x%x", path.name, info.node_count,
                 info.session_count, info.zxid)
        break
    t_snap = time.monotonic() - t0
    if tree is None:
        tree = DataTree()
    rec = Recovered(tree, snap_zxid, snap_path)
    rec.snapshot_config = tree.nodes["/zookeeper/config"].data
    actions: list = []
    for path, why in corrupt:
        actions.append(("rename", path, path.with_name(path.name + ".corrupt"),
                        f"snapshot {path} is corrupt ({why}); renamed to {path.name}.corrupt"))
    if snap_path is None and corrupt and not logs:
        raise RecoveryError(
            "no usable snapshot: " + "; ".join(f"{p}: {w}" for p, w in corrupt)
            + f"; and no logs in {log_dir} to rebuild from. Refusing to start with an empty tree: "
            "restore a snapshot, or move the data directory aside to start empty.")

    # which logs hold txns after the snapshot
    start = 0
    for i, (first, _) in enumerate(logs):
        if first <= snap_zxid + 1:
            start = i
    needed = logs[start:]
    prev = snap_zxid
    prev_where = f"snapshot {snap_path}" if snap_path else "an empty tree"
    apply = tree.apply
    replayed = 0
    recent: deque = deque(maxlen=keep) if keep > 0 else None
    recent_base = snap_zxid          # the zxid before recent[0]
    for i, (first, path) in enumerate(needed):
        newest = i == len(needed) - 1
        data = path.read_bytes()
        try:
            scan = logformat.scan(data)
        except ValueError as e:
            if newest and (len(data) < logformat.FILE_HEADER_SIZE or not data.strip(b"\0")):
                actions.append(("unlink", path, None,
                                f"{path}: incomplete header from a crash while creating it; removed"))
                continue
            raise RecoveryError(f"{path}: {e}; refusing to start (move the file aside if it is not a log)")
        if scan.hole is not None and _hole_inside_snapshot(data, scan, snap_zxid):
            actions.append(("note", path, None,
                            f"{path}: damaged record at offset {scan.end} (after zxid {_hex(scan.last_zxid)}), "
                            f"but every intact record past it is in snapshot {snap_path} (zxid <= "
                            f"0x{snap_zxid:x}): not needed"))
        elif scan.hole is not None:
            off, z = scan.hole
            raise RecoveryError(
                f"{path}: damaged record at offset {scan.end} (after zxid {_hex(scan.last_zxid)}) but intact "
                f"records follow (zxid 0x{z:x} at offset {off}): the log has a hole and truncating it would "
                "lose acknowledged txns. Refusing to start; restore the file or re-sync this server from "
                "a healthy replica.")
        for hdr, txn, _end in scan.records:
            z = hdr.zxid
            if z <= snap_zxid:
                continue
            if z <= prev:
                raise RecoveryError(f"{path}: zxid 0x{z:x} does not increase (after 0x{prev:x}); refusing to start")
            if not logformat.zxid_follows(prev, z):
                if prev == 0:
                    bad = "".join(f"; {p} is corrupt: {w}" for p, w in corrupt)
                    raise RecoveryError(
                        f"no usable snapshot in {snap_dir}{bad}; and the logs start at zxid 0x{z:x} ({path}), not at "
                        "the first txn: starting would serve an empty tree that the logs say is not empty "
                        "(ZOOKEEPER-2325). Refusing to start; restore the newest snapshot.")
                raise RecoveryError(
                    f"txns missing between zxid 0x{prev:x} ({prev_where}) and 0x{z:x} ({path}): refusing "
                    "to start from a tree older than the log; restore the missing log files or snapshot.")
            apply(hdr, txn)
            if recent is not None:
                if len(recent) == keep:
                    recent_base = recent[0][0].zxid
                recent.append((hdr, txn))
            if hdr.type == 16:
                rec.reconfigs.append((z, txn.data))
            prev = z
            replayed += 1
            prev_where = str(path)
        rec.log_files.append(path)
        if scan.damaged:
            actions.append(("truncate", path, scan.end,
                            f"{path}: torn tail after zxid {_hex(scan.last_zxid)} truncated at offset "
                            f"{scan.end} ({scan.size - scan.end} bytes dropped)"))
    if prev == 0 and snap_path is None and corrupt:
        raise RecoveryError("no usable snapshot (" + "; ".join(f"{p}: {w}" for p, w in corrupt)
                            + ") and no log txns to rebuild from; refusing to start with an empty tree")
    tree.last_zxid = max(tree.last_zxid, prev)
    rec.last_zxid = tree.last_zxid
    rec.replayed = replayed
    if recent:
        rec.recent, rec.recent_base = list(recent), recent_base
    rec.snapshot_s = t_snap
    rec.replay_s = time.monotonic() - t0 - t_snap
    rec.corrupt_snapshots = [p for p, _ in corrupt]
    _apply_actions(actions, log_dir, snap_dir)
    rec.actions = [a[3] for a in actions]
    return rec


def _hole_inside_snapshot(data, scan, snap_zxid: int) -> bool:
    """A log damaged in its middle is harmless when the snapshot already holds every txn around the
    damage: no intact record after it has a zxid above the snapshot's. (Such a log becomes the one
    read at start when a crash-torn newer log, the one that held snapshot + 1, is removed: refusing
    then would refuse a server that had started once from the same files.)"""
    off, z = scan.hole
    if z > snap_zxid:
        return False
    end = min(len(data), scan.content_end + 32)
    return logformat.find_intact_after(data, scan.end, snap_zxid, end) is None


def _apply_actions(actions, log_dir: Path, snap_dir: Path) -> None:
    for kind, path, arg, msg in actions:
        log.warning("%s", msg)
        if kind == "rename":
            os.replace(path, arg)
        elif kind == "unlink":
            path.unlink(missing_ok=True)
        elif kind == "truncate":
            with open(path, "r+b") as fh:
                fh.truncate(arg)
                os.fsync(fh.fileno())
    if actions:
        fsync_dir(log_dir)
        fsync_dir(snap_dir)


def purge(snap_dir: Path, log_dir: Path, retain: int = 3, recycle_bytes: int = 0) -> list[Path]:
    """Delete snapshots beyond the newest `retain` and the logs none of the kept ones needs; with
    recycle_bytes, those logs become new log files' space instead while there is room for a spare
    (coord.aio.txnlog.recycle_log), up to that many bytes of each."""
    retain = max(3, retain)
    snaps = list_snapshots(snap_dir)
    if len(snaps) <= retain:
        return []
    oldest_kept = snaps[retain - 1][0]
    doomed = [p for _, p in snaps[retain:]]
    for p in Path(snap_dir).glob("snapshot.*.corrupt"):
        z = logformat.zxid_of_name(p.name, "snapshot")
        if z is not None and z < oldest_kept:
            doomed.append(p)
    logs = list_logs(log_dir)
    keep_from = 0
    for i, (first, _) in enumerate(logs):
        if first <= oldest_kept + 1:
            keep_from = i
    doomed += [p for _, p in logs[:keep_from]]
    recyclable = {p for _, p in logs[:keep_from]} if recycle_bytes else set()
    freed = 0
    for p in reversed(doomed):   # the newest logs first: the most recently written space
        try:
            if p in recyclable and recycle_log(p, recycle_bytes):
                continue
            freed += p.stat().st_blocks * 512
            p.unlink()
        except FileNotFoundError:
            pass
    if doomed:
        log.info("retention: removed %s, %d MiB freed (keeping %d snapshots from zxid 0x%x)",
                 ", ".join(p.name for p in doomed), freed >> 20, retain, oldest_kept)
        mon = stalls.active()
        if mon is not None and freed:   # the file system frees (and may trim) them at its next commit
            mon.on_freed(freed, time.monotonic())
    return doomed


def check_disk_room(snap_dir: Path, log_dir: Path, snapshot_bytes: int) -> list[str]:
    """Warnings for each disk (the snapshots', and the log's if apart) with less free space than two
    snapshots of the size given: the next snapshot is written beside the last, and the log keeps
    growing meanwhile (docs/operations.md, "Disk space")."""
    if snapshot_bytes <= 0:
        return []
    import shutil
    out = []
    seen = set()
    for what, d in (("snapshots", snap_dir), ("txn log", log_dir)):
        try:
            dev = os.stat(d).st_dev
            if dev in seen:
                continue
            seen.add(dev)
            free = shutil.disk_usage(d).free
        except OSError:
            continue
        if free < 2 * snapshot_bytes:
            out.append(f"low disk space for the {what} in {d}: {free >> 20} MiB free, less than two snapshots "
                       f"({2 * snapshot_bytes >> 20} MiB); the next snapshot may fail and the txn log cannot "
                       f"grow much longer: free space or move dataDir/dataLogDir")
    return out


class Storage:
    """A server's durable state at run time: its txn log, its snapshots and when to take them.

    Snapshots are taken every snapCount txns, randomised per server as ZooKeeper does (the first
    after snapCount/2 + random(snapCount/2) txns) so that the members of an ensemble do not all
    snapshot at once; the log rolls to a new file when one starts, and retention runs after each.
    collapse_huge_pages (coord.aio.hugepages) is on for a server (zoo.cfg's default, from_config) and
    off for a Storage built by hand: a due snapshot waits for a running huge-page pass, which a caller
    counting txns to snapshots (tests, tools) would see as a changed schedule.
    """

    def __init__(self, data_dir: Path, data_log_dir: Path | None = None, *, force_sync: bool = True,
                 max_log_file_bytes: int = 64 << 20, snap_count: int = 100_000, retain: int = 3,
                 purge_interval_hours: int = 0, seed: int | None = None, pre_alloc_bytes: int = 64 << 20,
                 snapshot_method: str | None = None, collapse_huge_pages: bool = False):
        import random

        from coord.aio.snapshots import DEFAULT_METHOD, SnapshotTaker
        from coord.aio.txnlog import TxnLog
        self.snap_dir = snap_dir_of(data_dir)
        self.log_dir = log_dir_of(data_dir, data_log_dir)
        self.txnlog = TxnLog(self.log_dir, force_sync=force_sync, max_file_bytes=max_log_file_bytes,
                             pre_alloc_bytes=pre_alloc_bytes)
        self.snapshots = SnapshotTaker(self.snap_dir, method=snapshot_method or DEFAULT_METHOD,
                                       collapse_huge_pages=collapse_huge_pages)
        self.snap_count = max(2, snap_count)
        self.retain = max(3, retain)
        self.purge_interval_hours = purge_interval_hours
        self.rng = random.Random(seed)
        self.since_snapshot = 0
        self.skipped_snapshots = 0
        self.deferred_snapshots = 0      # commits at which a due snapshot waited for the huge-page pass
        # how long a due snapshot waits for a running huge-page pass (~2-3 s for 1M znodes here)
        self.collapse_wait_s = 30.0
        self._durable_zxid = 0
        self._tasks: set = set()
        self._next_threshold()

    @classmethod
    def from_config(cls, cfg) -> "Storage":
        return cls(cfg.data_dir, cfg.data_log_dir, force_sync=cfg.force_sync,
                   max_log_file_bytes=cfg.max_log_file_bytes, snap_count=cfg.snap_count,
                   retain=cfg.snap_retain_count, purge_interval_hours=cfg.purge_interval_hours,
                   pre_alloc_bytes=max(0, cfg.pre_alloc_size_kb) * 1024,
                   snapshot_method=cfg.snapshot_method, collapse_huge_pages=cfg.collapse_huge_pages)

    def _next_threshold(self) -> None:
        half = self.snap_count // 2
        self.threshold = half + self.rng.randrange(max(1, half))

    def recover(self, progress=None, keep: int = 0) -> Recovered:
        rec = recover(self.snap_dir, self.log_dir, progress=progress, keep=keep)
        snaps = list_snapshots(self.snap_dir)
        if snaps:
            try:
                self._warn_disk_room(snaps[0][1].stat().st_size)
            except OSError:
                pass
        self.txnlog.start(rec.last_zxid)
        self._durable_zxid = rec.last_zxid
        self.since_snapshot = rec.replayed
        self.snapshots.tree_loaded()
        return rec

    def start(self, loop) -> None:
        """Begin periodic retention if autopurge.purgeInterval asks for it."""
        if self.purge_interval_hours > 0:
            self._spawn(loop, self._purge_every(self.purge_interval_hours * 3600.0))

    def _spawn(self, loop, coro):
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def logged(self, zxid: int, tree: DataTree) -> None:
        """The log is durable through zxid and the tree has applied it: maybe start a snapshot."""
        prev = self._durable_zxid
        self._durable_zxid = zxid
        self.since_snapshot += zxid - prev if zxid >> 32 == prev >> 32 else 1
        if self.since_snapshot >= self.threshold:
            if self.snapshots.in_progress:
                self.skipped_snapshots += 1
                log.warning("too busy to snapshot (the previous one is still being written); skipping")
                self.since_snapshot = 0
                self._next_threshold()
                return
            if self.snapshots.huge_pages.busy(self.collapse_wait_s):
                self.deferred_snapshots += 1   # a fork now would copy 4 KiB page tables: at a later commit
                return
            self.snapshot(tree)

    def snapshot(self, tree: DataTree):
        """Start a snapshot of tree as of now (returns the task, or None if one is running)."""
        import asyncio
        if self.snapshots.in_progress:
            return None
        self.since_snapshot = 0
        self._next_threshold()
        self.txnlog.roll()
        return self._spawn(asyncio.get_running_loop(), self._snapshot(tree))

    async def _snapshot(self, tree: DataTree):
        import asyncio
        path = await self.snapshots.take(tree)
        if path is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.purge)
            self._warn_disk_room(self.snapshots.last_bytes)
        return path

    def _warn_disk_room(self, snapshot_bytes: int) -> None:
        for w in check_disk_room(self.snap_dir, self.log_dir, snapshot_bytes):
            log.warning("%s", w)

    def purge(self) -> list[Path]:
        try:
            return purge(self.snap_dir, self.log_dir, self.retain, self.txnlog.pre_alloc_bytes)
        except OSError as e:
            log.error("retention failed: %s", e)
            return []

    async def _purge_every(self, seconds: float) -> None:
        import asyncio
        while True:
            await asyncio.sleep(seconds)
            await asyncio.get_running_loop().run_in_executor(None, self.purge)

    async def close(self) -> None:
        import asyncio
        await self.txnlog.drain()
        self.txnlog.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:  # a forked snapshot's child is killed and its tmp file removed as its task ends
            await asyncio.gather(*tasks, return_exceptions=True)
        self.snapshots.close()

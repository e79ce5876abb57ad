"""Snapshot files: taken from the live tree without stalling the event loop, and read back.

Taking one (`SnapshotTaker.take`): a TreeCapture (coord.core.snapformat) pins the tree as of its
last applied zxid in O(1) (copy-on-write of the nodes later txns touch), then the event loop
serialises the captured nodes in slices of about `slice_ms`, yielding between slices, while a
worker thread compresses the frames and writes them to `snapshot.<zxid>.tmp`. At the end the file is
fsynced, renamed to `snapshot.<zxid hex>` and the directory fsynced; only then does it count. The
longest time the loop spent inside the snapshot in one go is kept in `max_stall_ms`.

Reading one (`read_snapshot`) verifies every frame and the tree digest; recovery
(coord.aio.datadir) walks back from the newest file to the first that loads.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coord.aio.txnlog import fsync_dir
from coord.core import logformat, snapformat
from coord.core.datatree import DataTree

log = logging.getLogger("coord.snapshots")

PREFIX = "snapshot"


def snapshot_name(zxid: int) -> str:
    return f"{PREFIX}.{zxid:x}"


def list_snapshots(snap_dir: Path) -> list[tuple[int, Path]]:
    """(zxid, path) of every snapshot.<hex> file, newest first (temp and corrupt ones excluded)."""
    out = []
    try:
        names = os.listdir(snap_dir)
    except FileNotFoundError:
        return []
    for name in names:
        if name.count(".") != 1:
            continue
        z = logformat.zxid_of_name(name, PREFIX)
        if z is not None:
            out.append((z, Path(snap_dir) / name))
    out.sort(reverse=True)
    return out


def _prefetched_frames(read, flags):
    """snapformat.iter_frames in a worker thread: file reads, checksums and zlib (which release the
    GIL) overlap with building nodes on the calling thread."""
    q: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()

    def worker():
        try:
            for item in snapformat.iter_frames(read, flags):
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)
    t = threading.Thread(target=worker, name="snapshot-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join()


def read_snapshot(path: Path, progress=None) -> tuple[DataTree, snapformat.SnapshotInfo]:
    """Load and verify one snapshot file (SnapshotError if it is not intact)."""
    name_zxid = logformat.zxid_of_name(path.name, PREFIX)
    with open(path, "rb", buffering=1 << 20) as f:
        tree, info = snapformat.load(f.read, progress, frames=_prefetched_frames)
    if name_zxid is not None and name_zxid != info.zxid:
        raise snapformat.SnapshotError(f"holds zxid 0x{info.zxid:x}, not the 0x{name_zxid:x} of its name")
    return tree, info


def scan_snapshot(path: Path) -> snapformat.SnapshotInfo:
    with open(path, "rb", buffering=1 << 20) as f:
        return snapformat.scan(f.read)


def write_snapshot_bytes(snap_dir: Path, zxid: int, data: bytes) -> Path:
    """Install snapshot bytes atomically (temp, fsync, rename, fsync dir): Zab's SNAP install."""
    snap_dir.mkdir(parents=True, exist_ok=True)
    final = snap_dir / snapshot_name(zxid)
    tmp = final.with_name(final.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(snap_dir)
    return final


def remove_temp_files(snap_dir: Path) -> None:
    for p in Path(snap_dir).glob(f"{PREFIX}.*.tmp"):
        log.info("removing unfinished snapshot %s", p)
        p.unlink(missing_ok=True)


class SnapshotTaker:
    """At most one snapshot at a time, written in slices interleaved with the event loop."""

    def __init__(self, snap_dir: Path, *, slice_ms: float = 2.0, compressed: bool = True,
                 fsync: bool = True):
        self.dir = Path(snap_dir)
        self.slice_ms = slice_ms
        self.compressed = compressed
        self.fsync = fsync
        self.in_progress = False
        self.count = 0
        self.failures = 0
        self.last_zxid = -1
        self.last_path: Path | None = None
        self.last_duration_s = 0.0
        self.last_capture_ms = 0.0
        self.last_max_slice_ms = 0.0
        self.last_max_slice_cpu_ms = 0.0  # the same, in CPU time of the loop's thread (no preemption)
        self.max_stall_ms = 0.0          # over all snapshots of this process
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="snapshot-writer")
        self._nodes_per_slice = 300

    async def take(self, tree: DataTree) -> Path | None:
        """Snapshot tree as of now; returns the file, or None if it failed (logged)."""
        if self.in_progress:
            return None
        self.in_progress = True
        loop = asyncio.get_running_loop()
        t_start = time.perf_counter()
        c_start = time.thread_time()
        capture = snapformat.TreeCapture(tree)
        capture_ms = (time.perf_counter() - t_start) * 1000
        max_slice = capture_ms
        max_cpu = (time.thread_time() - c_start) * 1000
        zxid = capture.zxid
        final = self.dir / snapshot_name(zxid)
        tmp = final.with_name(final.name + ".tmp")
        f = None
        pending: list[asyncio.Future] = []
        compressed = self.compressed

        def write(frames, first=False):
            if first:
                f.write(snapformat.header(zxid, compressed=compressed, created_ms=int(time.time() * 1000)))
            for kind, raw in frames:
                f.write(snapformat.seal_frame(kind, raw, compressed))

        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            f = await loop.run_in_executor(self._pool, lambda: open(tmp, "wb", buffering=1 << 20))
            enc = snapformat.SnapshotEncoder(zxid, capture.sessions, chunk_nodes=4096)
            pending.append(loop.run_in_executor(self._pool, write, enc.take(), True))
            done = False
            while not done:
                t0 = time.perf_counter()
                c0 = time.thread_time()
                done = capture.emit(enc, self._nodes_per_slice)
                frames = enc.take()
                if frames:
                    pending.append(loop.run_in_executor(self._pool, write, frames))
                ms = (time.perf_counter() - t0) * 1000
                cpu = (time.thread_time() - c0) * 1000
                if cpu > max_cpu:
                    max_cpu = cpu
                    log.debug("snapshot slice of %d nodes: %.1f ms wall, %.1f ms CPU", self._nodes_per_slice, ms, cpu)
                if ms > max_slice:
                    max_slice = ms
                # aim each slice at slice_ms of CPU: wall time includes preemption by other
                # processes, which would shrink the slices to a few nodes on a busy machine
                ratio = self.slice_ms / cpu if cpu > 0 else 2.0
                self._nodes_per_slice = max(100, min(200_000, int(self._nodes_per_slice * min(2.0, max(0.5, ratio)))))
                while len(pending) > 8:  # bound the frames waiting for the writer
                    await pending.pop(0)
                await asyncio.sleep(0)
            t0 = time.perf_counter()
            frames = enc.finish()
            capture.close()
            max_slice = max(max_slice, (time.perf_counter() - t0) * 1000)
            if enc.digest != capture.digest or enc.node_count != capture.node_count:
                raise RuntimeError(f"captured state changed while writing (digest 0x{enc.digest:x} != "
                                   f"0x{capture.digest:x}); snapshot abandoned")
            pending.append(loop.run_in_executor(self._pool, write, frames))
            for p in pending:
                await p
            pending.clear()
            await loop.run_in_executor(self._pool, self._finish_file, f, tmp, final)
            f = None
        except Exception as e:
            capture.close()
            for p in pending:
                try:
                    await p
                except Exception:
                    pass
            self.failures += 1
            log.error("snapshot at zxid 0x%x failed: %s", zxid, e)
            if f is not None:
                await loop.run_in_executor(self._pool, _close_and_remove, f, tmp)
            return None
        finally:
            capture.close()  # also when cancelled: the tree must not keep calling a dead capture
            self.in_progress = False
        self.count += 1
        self.last_zxid = zxid
        self.last_path = final
        self.last_duration_s = time.perf_counter() - t_start
        self.last_capture_ms = capture_ms
        self.last_max_slice_ms = max_slice
        self.last_max_slice_cpu_ms = max_cpu
        self.max_stall_ms = max(self.max_stall_ms, max_slice)
        log.info("snapshot %s: %d nodes, %d sessions in %.2fs (capture %.1f ms, longest slice %.1f ms, "
                 "%.1f ms CPU)", final.name, enc.node_count, len(capture.sessions), self.last_duration_s,
                 capture_ms, max_slice, max_cpu)
        return final

    def _finish_file(self, f, tmp: Path, final: Path) -> None:
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        f.close()
        os.replace(tmp, final)
        if self.fsync:
            fsync_dir(self.dir)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _close_and_remove(f, tmp: Path) -> None:
    try:
        f.close()
    except OSError:
        pass
    tmp.unlink(missing_ok=True)

"""Snapshot files: taken from the live tree without stalling the event loop, and read back.

Taking one (`SnapshotTaker.take`) has two methods (zoo.cfg `coord.snapshotMethod=fork|inloop`), and
`auto` (the default where os.fork exists) picks one per snapshot, below.

fork. The loop notes the tree's last applied zxid and node count
(and digest, see below), freezes the GC generations and forks. The child holds an OS copy-on-write image of the
tree exactly as of that zxid, so it needs no TreeCapture: it encodes every node with the same
SnapshotEncoder, compresses, writes `snapshot.<zxid>.tmp`, fsyncs it and writes one result line
(node count, digest, bytes, CPU seconds) to a pipe, then `os._exit`. The parent reads the pipe with
`loop.add_reader`, reaps the child, checks its exit status and that what it wrote matches what was
noted at the fork, and only then renames the file to `snapshot.<zxid hex>` and fsyncs the directory.
Only the parent renames: an orphaned child (parent killed) can at most leave a `.tmp` file, which
recovery removes, and it is killed with its parent anyway (PR_SET_PDEATHSIG on Linux). The child
also checks its encoder's digest sum and node count against its own image of the tree, whose
pending node digest shares it settles itself (settling them in the parent would be up to ~0.5 ms of
the stall under a write load); the parent checks the node count, and the digest whenever it was
already settled at the fork. The loop is held only for the fork itself (copying the page tables:
~20 ms per GiB of RSS in 4 KiB pages here, ~2 ms for the same heap in 2 MiB pages, which
coord.aio.hugepages builds in the background after recovery; a child's copy-on-write splits them
again, and no pass follows a snapshot by default) and
the bookkeeping around it; that is `max_stall_ms`. If fork fails (ENOMEM, EAGAIN) the snapshot is
taken in-loop instead.

Why the child is safe although the parent has threads (the txn log's fsync worker, executors).
fork copies only the calling thread; a lock another thread held at that moment stays held forever in
the child. CPython re-initialises the locks it owns in the child (the GIL, the import lock,
threading's, logging's via its at-fork hooks) and glibc's malloc locks its arenas around fork, so
allocation is safe. Every other lock - a BufferedWriter's (the txn log's file object), the executor's
queue and condition variables, a handler's stream lock, libuv's/uvloop's mutexes, zstd contexts
owned by other threads - may be held, so the child touches none of them: no logging, no asyncio, no
executor, no file objects inherited from the parent, no imports (everything it calls is imported
by this module and snapformat at import time), no threads. It uses raw fds (os.open/os.write/
os.fsync), a zstd compressor of its own (snapformat keeps one per thread; the child's thread has
none or the loop thread's, which no other thread uses), struct and zlib. It also closes every
inherited fd except its pipe at once (the listening and client sockets, the epoll fd, the log
file), so a killed parent's port can be rebound and closed connections really close, and resets
SIGTERM/SIGINT to their defaults (asyncio's handlers would only write to the parent's wakeup fd).
It leaves with `os._exit`, always (try/finally), so it never returns into the parent's code, runs
no atexit hooks and never flushes the parent's buffered files (which would duplicate log bytes).

Memory. The child's pages are shared with the parent until either side writes one. The parent's
txns copy the pages they touch; the child reads every node, and reading a Python object writes
its refcount, so the child ends up copying nearly every page of the tree: a snapshot can cost up
to about the tree's size again in RSS while it runs (measured in docs/storage.md). gc.freeze()
before the fork keeps the parent's own full collections from writing every tracked object's GC
header during the child's run; the child encodes with the cycle collector paused (coord.runtime).
The frozen objects stay out of later collections for good (as recovery already does with the loaded
tree): cyclic garbage that exists at the moment of a freeze is never collected, a bounded cost per
snapshot that buys collections that never walk the whole tree.

inloop. A TreeCapture (coord.core.snapformat) pins the tree as of its last applied zxid in O(1)
(copy-on-write of the nodes later txns touch), then the event loop serialises the captured nodes
in slices of about `slice_ms` (0.5 ms of CPU), yielding between slices, while a worker thread compresses the
frames and writes them to `snapshot.<zxid>.tmp`. At the end the file is fsynced, renamed to
`snapshot.<zxid hex>` and the directory fsynced; only then does it count. The longest time the loop
spent inside the snapshot in one go is kept in `max_stall_ms`. Zab's SNAP streaming to learners
(coord.core.zab.snapstream) always uses TreeCapture.

auto. Both keep the loop's turns short, but not equally: a fork holds the loop for the whole page-table
copy (9.5 ms at 173 MiB of RSS, 20 ms and more per GiB), once per snapshot, whatever the tree's size;
in-loop slices hold it at most `slice_ms` each but spend the encoding CPU (a few µs a node) on the
loop's own thread. For a tree whose encoding is cheap next to the time between snapshots, in-loop
is the shorter tail at little cost: in the 60 s open-loop setData run at 17,652 writes/s (a
20,000-znode tree, a snapshot every ~4 s) p99 was 8.4 ms in-loop against 11.0 forked, and requests
over p99 no longer waited on forks (docs/benchmarks.md, "Session 7"). For a large tree under a high
write rate in-loop encoding would take a large share of the loop, and the fork's child does it on
another core. So auto takes a snapshot in-loop when its estimated loop CPU (nodes x the CPU per node
the last in-loop snapshot measured, `AUTO_NODE_CPU_S` before the first) is at most `AUTO_SHARE` of
the time since the previous snapshot began and at most `AUTO_MAX_LOOP_S`, and forks otherwise. The
bound matters after a quiet spell: the interval then says nothing about the burst that filled the
snapshot, and an in-loop capture of a 1.9M-node tree under 11,800 deletes/s lived for minutes and
copied every node the deletes touched.

Reading one (`read_snapshot`) verifies every frame and the tree digest; recovery
(coord.aio.datadir) walks back from the newest file to the first that loads.
"""
from __future__ import annotations

import asyncio
import logging
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

from coord.aio import stalls
from coord.aio.hugepages import HeapCollapser
from coord.aio.txnlog import fsync_dir, write_all
from coord.core import logformat, snapformat
from coord.core.datatree import DataTree
from coord.runtime import cycle_collector_paused, freeze_gc, pause_major_gc, resume_major_gc

log = logging.getLogger("coord.snapshots")

PREFIX = "snapshot"

METHODS = ("fork", "inloop", "auto")
DEFAULT_METHOD = "auto" if hasattr(os, "fork") else "inloop"
AUTO_SHARE = 0.25            # auto: in-loop while its encoding takes at most this share of the loop
AUTO_NODE_CPU_S = 4e-6       # auto: loop CPU per node of an in-loop snapshot until one has measured it
FORK_GC_WAIT_S = 15.0        # PyPy: how long a fork waits for a major-collection cycle to end (see _between_major_cycles)
AUTO_MAX_LOOP_S = 0.5        # auto: never in-loop past this much loop CPU (~125,000-300,000 nodes)

try:  # the child asks to be killed with its parent (Linux); bound here, never imported in the child
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (ImportError, OSError, AttributeError):
    _prctl = None
_PR_SET_PDEATHSIG = 1
try:  # write-behind of the snapshot file (Linux), bound here: the child imports nothing
    _sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    _sync_file_range.restype = ctypes.c_int
except (NameError, OSError, AttributeError):
    _sync_file_range = None
_SFR_WRITE = 2                # SYNC_FILE_RANGE_WRITE: start writeback, do not wait
_SFR_WAIT_ALL = 1 | 2 | 4     # WAIT_BEFORE | WRITE | WAIT_AFTER: the range is on disk when it returns
_CHILD_BATCH = 4096          # nodes per add_batch in the child
_CHILD_WRITE_BYTES = 1 << 20  # frames are written in runs of about this size
# tests only: seconds the child waits after fsyncing its file, before it reports (kill -9 tests)
_CHILD_DELAY_S = float(os.environ.get("COORD_TEST_SNAPSHOT_CHILD_DELAY_S", "0") or 0)
CHILD_NICE_ENV = "COORD_SNAPSHOT_CHILD_NICE"
CHILD_NICE = 0


def _knob(env: str, raw: str | None, kind, lo, hi, default, what: str):
    """An A/B knob from the environment: raw parsed as kind within [lo, hi], else the default
    (an unusable value is logged, never fatal)."""
    if raw is None or raw == "":
        return default
    try:
        v = kind(raw)
        if not lo <= v <= hi:
            raise ValueError(raw)
        return v
    except ValueError:
        log.warning("%s=%r is not %s in [%s, %s]; using %s", env, raw, what, lo, hi, default)
        return default


def child_nice(raw: str | None) -> int:
    """The forked child's niceness (COORD_SNAPSHOT_CHILD_NICE, 0-19; default 0: the server's own).
    A knob for A/B runs, off by default. The child of a 1M-znode tree needs a core for 2-3 s, and
    while it lives its parent loop has 1.3-22x more "preempted" stalls of 10 ms or more (issue 17). At nice 19
    it took longer and more snapshots were skipped under a saturated preload (9-11 against 6 per
    1M creates), and a light writer's p99 was no better (19.9-23.5 ms against 17.1; one loaded run
    each; docs/benchmarks.md, "A light writer at 1M znodes")."""
    return _knob(CHILD_NICE_ENV, raw, int, 0, 19, CHILD_NICE, "a niceness")


_CHILD_NICE = child_nice(os.environ.get(CHILD_NICE_ENV))
SLICE_ENV = "COORD_SNAPSHOT_SLICE_MS"
SLICE_MS = 0.5


def slice_ms_of(raw: str | None) -> float:
    """CPU per slice of an in-loop snapshot (COORD_SNAPSHOT_SLICE_MS, 0.2-50; default 0.5): a knob for
    A/B runs. Each slice shares a loop turn with the requests that came in meanwhile, and every
    other request waits behind that turn: with 2 ms slices, turns of 2-5 ms ("busy") were what 43-47%
    of the requests over p99 waited on in the 60 s setData run at 17,652/s, with 0.5 ms slices 3-8%
    (3 rounds each; p99 median 9.1 against 8.5 ms; docs/benchmarks.md, "Session 7")."""
    return _knob(SLICE_ENV, raw, float, 0.2, 50.0, SLICE_MS, "a number of ms")


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
    """At most one snapshot at a time: in a forked child, or in slices interleaved with the loop."""

    def __init__(self, snap_dir: Path, *, slice_ms: float | None = None, compressed: bool = True,
                 fsync: bool = True, method: str = DEFAULT_METHOD, collapse_huge_pages: bool = False):
        if method not in METHODS:
            raise ValueError(f"snapshot method must be one of {', '.join(METHODS)}, got {method!r}")
        if method in ("fork", "auto") and not hasattr(os, "fork"):
            method = "inloop"
        self.dir = Path(snap_dir)
        self.slice_ms = slice_ms if slice_ms is not None else slice_ms_of(os.environ.get(SLICE_ENV))
        self.compressed = compressed
        self.fsync = fsync
        self.major_gc_paused = False   # PyPy's major collections stopped while a forked child lives
        self.method = method
        self.in_progress = False
        self.count = 0
        self.failures = 0
        self.fork_fallbacks = 0          # forks that failed, so the snapshot was taken in-loop
        # A child that has not reported by then is killed and the snapshot counts as failed: a hung
        # child (a stuck disk, a lock it inherited) would otherwise hold in_progress for ever, every
        # later snapshot would be skipped and the log would grow without bound. A 1M-znode tree
        # takes a child ~3 s here; the bound leaves room for trees and disks far slower.
        self.child_timeout_s = 900.0
        self.last_zxid = -1
        self.last_path: Path | None = None
        self.last_method = ""
        self.last_duration_s = 0.0
        self.last_capture_ms = 0.0       # inloop: TreeCapture; fork: the loop's time up to after fork()
        self.last_fork_ms = 0.0          # os.fork() alone
        self.last_child_cpu_s = 0.0      # CPU time of the forked child
        self.last_bytes = 0
        self.last_max_slice_ms = 0.0
        self.last_max_slice_cpu_ms = 0.0  # the same, in CPU time of the loop's thread (no preemption)
        self.max_stall_ms = 0.0          # over all snapshots of this process
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="snapshot-writer")
        self._nodes_per_slice = 300
        self._child: _Child | None = None
        self.node_cpu_s = AUTO_NODE_CPU_S    # loop CPU per node of the last in-loop snapshot
        self.last_loop_cpu_ms = 0.0          # the loop's CPU inside the last in-loop snapshot, all slices
        self._last_start: float | None = time.monotonic()   # the first interval counts from start-up
        self.auto_choices = {"fork": 0, "inloop": 0}
        # forks copy page tables: keep them short by keeping the heap in huge pages (coord.aio.hugepages)
        self.huge_pages = HeapCollapser(enabled=collapse_huge_pages and self.method in ("fork", "auto"))

    def tree_loaded(self) -> None:
        """A tree was just built (recovery, a SNAP from the leader): gather its pages into huge pages
        in the background before the first fork."""
        self.huge_pages.start()

    async def take(self, tree: DataTree) -> Path | None:
        """Snapshot tree as of now; returns the file, or None if it failed (logged)."""
        if self.in_progress:
            return None
        method = self.choose(len(tree.nodes), time.monotonic())
        if method == "fork":
            self.in_progress = True
            try:
                res = await self._take_forked(tree)
            finally:
                self.in_progress = False
            if res is not _NO_FORK:
                return res
            self.fork_fallbacks += 1
        return await self._take_inloop(tree)

    def choose(self, nodes: int, now: float) -> str:
        """The method of a snapshot starting now: the configured one, or auto's pick (above)."""
        last, self._last_start = self._last_start, now
        if self.method != "auto":
            return self.method
        estimate = nodes * self.node_cpu_s
        since = now - last if last is not None else float("inf")
        method = "inloop" if estimate <= min(AUTO_MAX_LOOP_S, AUTO_SHARE * since) else "fork"
        self.auto_choices[method] += 1
        log.debug("auto snapshot: %s (%d nodes x %.2f us = %.0f ms of loop CPU, %.1f s since the last)",
                  method, nodes, self.node_cpu_s * 1e6, estimate * 1000, since)
        return method

    async def _between_major_cycles(self) -> bool:
        """Wait (at most FORK_GC_WAIT_S) until no PyPy major-collection cycle is under way; True if
        none is. Why: the child's life is then spent with major collections paused
        (coord.runtime.pause_major_gc), and a cycle paused half-way is worse than one never started:
        every old object the parent writes meanwhile is queued for re-marking, and the minor
        collections grew to 10-78 ms each (640 of them over 10 ms in one 1M-znode run)."""
        mon = stalls.active()
        if mon is None or sys.implementation.name != "pypy":
            return True
        t0 = time.monotonic()
        while mon.gc_major_active and time.monotonic() - t0 < FORK_GC_WAIT_S:
            await asyncio.sleep(0.02)
        return not mon.gc_major_active

    async def _take_forked(self, tree: DataTree):
        between_cycles = await self._between_major_cycles()
        loop = asyncio.get_running_loop()
        t_start = time.perf_counter()
        c_start = time.thread_time()
        zxid = tree.last_zxid
        # settling the digest (up to 256 pending node shares, ~0.5 ms under a write load) would be
        # added to the stall: the child settles its identical image instead and checks its encoder
        # against it; the parent compares digests too when it has one for free
        digest = tree.digest if tree.digest_settled else None
        node_count = len(tree.nodes)
        session_count = len(tree.sessions)
        final = self.dir / snapshot_name(zxid)
        tmp = final.with_name(final.name + ".tmp")
        created_ms = int(time.time() * 1000)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            rfd, wfd = os.pipe()
        except OSError as e:
            self.failures += 1
            log.error("snapshot at zxid 0x%x failed: %s", zxid, e)
            return None
        parent_pid = os.getpid()
        self.huge_pages.stop()  # the parent's pages are about to be shared with the child
        freeze_gc()  # the parent's collections must not write every old object's GC header
        paused = between_cycles and pause_major_gc()   # the same on PyPy: no major cycle while the child lives
        t_fork = time.perf_counter()
        try:
            pid = os.fork()
        except OSError as e:
            resume_major_gc(paused)
            os.close(rfd)
            os.close(wfd)
            log.warning("snapshot at zxid 0x%x: fork failed (%s); taking it on the event loop instead", zxid, e)
            return _NO_FORK
        if pid == 0:  # the child: never returns
            try:
                resume_major_gc(paused)   # the child collects as before: its garbage is its own
                _child_main(tree, zxid, str(tmp), wfd, self.compressed, self.fsync, created_ms, parent_pid)
            finally:
                os._exit(1)
        self.major_gc_paused = paused
        child = self._child = _Child(pid, rfd, tmp)
        try:
            fork_ms = (time.perf_counter() - t_fork) * 1000
            mon = stalls.active()
            if mon is not None:
                now = time.monotonic()
                mon.note("snapshot-fork", now - fork_ms / 1000, now)
                mon.note("snapshot-child", now)     # writing its file until the pipe closes
            os.close(wfd)
            done = loop.create_future()

            def readable() -> None:
                try:
                    b = os.read(rfd, 4096)
                except BlockingIOError:
                    return
                except OSError:
                    b = b""
                if b and sum(map(len, child.out)) < 65536:
                    child.out.append(b)
                elif not b:
                    loop.remove_reader(rfd)
                    child.reading = False
                    if not done.done():
                        done.set_result(None)
            os.set_blocking(rfd, False)
            loop.add_reader(rfd, readable)
            child.reading = True
            stall_ms = (time.perf_counter() - t_start) * 1000
            stall_cpu = (time.thread_time() - c_start) * 1000
            try:
                await asyncio.wait_for(asyncio.shield(done), self.child_timeout_s)
            except asyncio.TimeoutError:
                raise RuntimeError(f"snapshot child {pid} did not finish within {self.child_timeout_s:g} s; "
                                   "killed") from None
            finally:
                if mon is not None:
                    mon.end_note("snapshot-child", time.monotonic())
            try:
                status = await _reap(pid)   # the pipe is closed: the child has exited or is exiting
            except ChildProcessError:
                child.reaped = True         # reaped by someone else: its pid must not be signalled
                raise RuntimeError(f"snapshot child {pid} was reaped by another waiter; its exit status is unknown")
            child.reaped = True
            t0 = time.perf_counter()
            c0 = time.thread_time()
            line = b"".join(child.out).decode("utf-8", "replace").strip()
            code = os.waitstatus_to_exitcode(status)
            fields = line.split()
            if code != 0 or len(fields) != 5 or fields[0] != "ok":
                why = f"exit status {code}" if code >= 0 else f"killed by signal {-code}"
                raise RuntimeError(f"snapshot child {pid} failed ({why}): {line or 'no result'}")
            n, d, size, cpu = int(fields[1]), int(fields[2]), int(fields[3]), float(fields[4])
            if n != node_count or (digest is not None and d != digest):
                noted = "" if digest is None else f" with digest 0x{digest:x}"
                raise RuntimeError(f"the child wrote {n} nodes with digest 0x{d:x}, not the {node_count} "
                                   f"nodes{noted} noted at the fork; snapshot abandoned")
            post_ms = (time.perf_counter() - t0) * 1000
            post_cpu = (time.thread_time() - c0) * 1000
            await loop.run_in_executor(self._pool, self._install_file, tmp, final)
            child.tmp = None
        except Exception as e:
            self.failures += 1
            log.error("snapshot at zxid 0x%x failed: %s", zxid, e)
            await loop.run_in_executor(self._pool, _unlink, tmp)
            child.tmp = None
            return None
        finally:
            # also when cancelled (Storage.close): no child left running, no tmp file left behind
            self._end_child(child)
            resume_major_gc(paused)
            self.major_gc_paused = False
            # the parent's writes while the child lived split huge pages (copy-on-write): gather them
            # again only if COORD_HUGEPAGES_AFTER_SNAPSHOT_MIB asks (coord.aio.hugepages: off by default)
            self.huge_pages.start(after_snapshot=True)
        self._taken(zxid, final, "fork", t_start, stall_ms, max(stall_ms, post_ms), max(stall_cpu, post_cpu))
        self.last_fork_ms = fork_ms
        self.last_child_cpu_s = cpu
        self.last_bytes = size
        log.info("snapshot %s: %d nodes, %d sessions in %.2fs (forked child %d: fork %.1f ms, capture %.1f ms, "
                 "longest slice %.1f ms, %.1f ms CPU; child %.2fs CPU, %d bytes)", final.name, n, session_count,
                 self.last_duration_s, pid, fork_ms, stall_ms, self.last_max_slice_ms,
                 self.last_max_slice_cpu_ms, cpu, size)
        return final

    def _end_child(self, child: "_Child") -> None:
        """Kill (if still running) and reap the child, stop reading its pipe, remove its tmp file."""
        if child.reading:
            try:
                asyncio.get_running_loop().remove_reader(child.rfd)
            except RuntimeError:  # no running loop (close() after the loop ended)
                pass
            child.reading = False
        if not child.reaped:
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(child.pid, 0)
            except ChildProcessError:
                pass
            child.reaped = True
        if child.rfd >= 0:
            os.close(child.rfd)
            child.rfd = -1
        if child.tmp is not None:
            _unlink(child.tmp)
            child.tmp = None
        if self._child is child:
            self._child = None

    def _taken(self, zxid: int, final: Path, method: str, t_start: float, capture_ms: float,
               max_slice_ms: float, max_slice_cpu_ms: float) -> None:
        """Count a snapshot that is now on disk under its final name, with its stall figures."""
        self.count += 1
        self.last_zxid = zxid
        self.last_path = final
        self.last_method = method
        self.last_duration_s = time.perf_counter() - t_start
        self.last_capture_ms = capture_ms
        self.last_max_slice_ms = max_slice_ms
        self.last_max_slice_cpu_ms = max_slice_cpu_ms
        self.max_stall_ms = max(self.max_stall_ms, max_slice_ms)

    def _install_file(self, tmp: Path, final: Path) -> None:
        """The child fsynced tmp; only now, and only here in the parent, does it get its name."""
        os.replace(tmp, final)
        if self.fsync:
            fsync_dir(self.dir)

    async def _take_inloop(self, tree: DataTree) -> Path | None:
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
        loop_cpu = max_cpu
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
                loop_cpu += cpu
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
            c0 = time.thread_time()
            frames = enc.finish()
            capture.close()
            max_slice = max(max_slice, (time.perf_counter() - t0) * 1000)
            loop_cpu += (time.thread_time() - c0) * 1000
            if enc.digest != capture.digest or enc.node_count != capture.node_count:
                raise RuntimeError(f"captured state changed while writing (digest 0x{enc.digest:x} != "
                                   f"0x{capture.digest:x}); snapshot abandoned")
            pending.append(loop.run_in_executor(self._pool, write, frames))
            for p in pending:
                await p
            pending.clear()
            size = await loop.run_in_executor(self._pool, self._finish_file, f, tmp, final)
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
        self._taken(zxid, final, "inloop", t_start, capture_ms, max_slice, max_cpu)
        self.last_loop_cpu_ms = loop_cpu
        self.last_bytes = size
        if enc.node_count >= 1000:   # a tiny tree's per-node figure is mostly fixed costs
            self.node_cpu_s = loop_cpu / 1000.0 / enc.node_count
        log.info("snapshot %s: %d nodes, %d sessions in %.2fs in-loop (capture %.1f ms, longest slice %.1f ms, "
                 "%.1f ms CPU; %.0f ms of loop CPU in all)", final.name, enc.node_count, len(capture.sessions),
                 self.last_duration_s, capture_ms, max_slice, max_cpu, loop_cpu)
        return final

    def _finish_file(self, f, tmp: Path, final: Path) -> int:
        """Durable, closed and renamed; returns its size."""
        f.flush()
        size = f.tell()
        if self.fsync:
            os.fsync(f.fileno())
        f.close()
        self._install_file(tmp, final)
        return size

    def close(self) -> None:
        """Stop: a running child is killed and reaped and its tmp file removed, never renamed."""
        self.huge_pages.stop(wait=1.0)
        if self._child is not None:
            self._end_child(self._child)
        self._pool.shutdown(wait=True)


def _close_and_remove(f, tmp: Path) -> None:
    try:
        f.close()
    except OSError:
        pass
    tmp.unlink(missing_ok=True)


# -- the forked path -------------------------------------------------------------------------------

_NO_FORK = object()  # _take_forked's answer when fork itself failed


class _Child:
    __slots__ = ("pid", "rfd", "tmp", "out", "reading", "reaped")

    def __init__(self, pid: int, rfd: int, tmp: Path):
        self.pid = pid
        self.rfd = rfd
        self.tmp: Path | None = tmp   # None once renamed or removed
        self.out: list[bytes] = []
        self.reading = False
        self.reaped = False


async def _reap(pid: int) -> int:
    """The child's wait status, polled on the loop (never a blocking wait in a thread, which could
    reap it while a cancelled take kills the pid again)."""
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        await asyncio.sleep(delay)
        delay = min(0.05, delay * 2)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:  # not ours to fix here; recovery's remove_temp_files tries again at start
        log.warning("cannot remove %s: %s", path, e)


def _child_main(tree: DataTree, zxid: int, tmp: str, wfd: int, compressed: bool, fsync: bool,
                created_ms: int, parent_pid: int) -> None:
    """The forked child's whole life: write the snapshot, report on wfd, _exit. Never returns.

    Only pre-imported, lock-free code from here on (see the module docstring)."""
    code = 1
    try:
        try:
            _child_detach(wfd, parent_pid)
            c0 = time.process_time()
            with cycle_collector_paused():
                n, digest, size = _write_tree_file(tree, zxid, tmp, compressed, fsync, created_ms)
            if _CHILD_DELAY_S:
                time.sleep(_CHILD_DELAY_S)
            cpu = time.process_time() - c0
            write_all(wfd, f"ok {n} {digest} {size} {cpu:.3f}\n".encode())
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which logs it
            try:
                msg = f"{type(e).__name__}: {e}".replace("\n", " ")
                write_all(wfd, f"error {msg}\n".encode("utf-8", "replace"))
            except BaseException:  # noqa: BLE001
                pass
    finally:
        os._exit(code)


def _child_detach(wfd: int, parent_pid: int) -> None:
    """Let go of everything the child inherited but must not hold or use."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (ValueError, OSError):
            pass
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the request took effect
            raise RuntimeError("the parent is gone")
    if _CHILD_NICE:
        try:
            os.nice(_CHILD_NICE)
        except OSError:
            pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    # sockets, epoll, log files: a killed parent's port is free again. Only the fds that are open:
    # PyPy's closerange calls close() on every number up to the bound (CPython uses close_range(2)),
    # which with a high RLIMIT_NOFILE is minutes of CPU
    for fd in _open_fds():
        if fd > 2 and fd != wfd:
            try:
                os.close(fd)
            except OSError:
                pass


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]  # includes listdir's own, closed by then
    except OSError:
        return list(range(os.sysconf("SC_OPEN_MAX")))


def _write_tree_file(tree: DataTree, zxid: int, tmp: str, compressed: bool, fsync: bool,
                     created_ms: int) -> tuple[int, int, int]:
    """The whole tree (nothing changes it in the child) as snapshot bytes in tmp, fsynced.

    The nodes dict is in creation order, so parents come before their children (encode_tree)."""
    image_digest = tree.digest   # settles the pending node shares, in the child's copy only
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        size = write_all(fd, snapformat.header(zxid, compressed=compressed, created_ms=created_ms))
        done_to = 0     # bytes known written back (write-behind, below)
        enc = snapformat.SnapshotEncoder(zxid, tree.sessions, chunk_nodes=4096)
        seal = snapformat.seal_frame
        keys = iter(tree.nodes)
        values = iter(tree.nodes.values())
        out: list[bytes] = []
        pending = 0
        while True:
            paths = list(islice(keys, _CHILD_BATCH))
            if paths:
                enc.add_batch(paths, list(islice(values, len(paths))))
                frames = enc.take()
            else:
                frames = enc.finish()
            for kind, raw in frames:
                b = seal(kind, raw, compressed)
                out.append(b)
                pending += len(b)
            if pending >= _CHILD_WRITE_BYTES or not paths:
                start = size
                size += write_all(fd, b"".join(out))
                out.clear()
                pending = 0
                if fsync and _sync_file_range is not None:
                    # Write-behind: this run's writeback starts now and the previous run's is waited
                    # for, so the final fsync finds ~1 MiB dirty, not the whole file. One big fsync
                    # made the txn log's fdatasyncs (same file system: ext4 orders data before the
                    # journal commit they need) wait behind it: during a 40 MiB file, log fdatasync
                    # p99 24-145 ms with it against 10-45 ms with write-behind (issue 17)
                    _sync_file_range(fd, start, size - start, _SFR_WRITE)
                    if done_to < start:
                        _sync_file_range(fd, done_to, start - done_to, _SFR_WAIT_ALL)
                        done_to = start
            if not paths:
                break
        if enc.digest != image_digest or enc.node_count != len(tree.nodes):
            raise RuntimeError(f"encoded {enc.node_count} nodes with digest 0x{enc.digest:x}, but the tree has "
                               f"{len(tree.nodes)} with digest 0x{image_digest:x}")
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return enc.node_count, enc.digest, size

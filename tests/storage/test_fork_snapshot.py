"""Snapshots written by a forked child (coord.aio.snapshots, method "fork"): exact, only renamed by
the parent after it checked the child's digest, nothing left behind when the child fails or the
server stops, and the in-loop method still there when zoo.cfg selects it."""
from __future__ import annotations

import asyncio
import errno
import os
import random
import time
from pathlib import Path

import pytest

from coord.aio import snapshots
from coord.aio.datadir import Storage, recover
from coord.aio.snapshots import SnapshotTaker, list_snapshots, read_snapshot
from coord.aio.zoocfg import ConfigError, parse
from coord.core.datatree import DataTree
from tests.storage.helpers import TxnMaker, random_txns, tree_state
from tests.storage.test_snapshot_stall import big_tree

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in Path(d).glob("snapshot.*.tmp"))


def take(taker: SnapshotTaker, tree: DataTree, loop_kind: str = "asyncio"):
    async def run():
        try:
            return await taker.take(tree)
        finally:
            taker.close()
    if loop_kind == "uvloop":   # what `coord serve` runs on
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
        try:
            return loop.run_until_complete(run())
        finally:
            loop.close()
    return asyncio.run(run())


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_forked_snapshot_loads_with_an_equal_digest(tmp_path, loop_kind):
    tree = big_tree(30_000)
    tree.sessions.update({0x1234: 30000, 0x5678: 4000})
    expected = tree_state(tree)
    taker = SnapshotTaker(tmp_path, method="fork")
    path = take(taker, tree, loop_kind)
    assert path is not None and path.name == f"snapshot.{tree.last_zxid:x}"
    assert taker.last_method == "fork" and taker.count == 1 and taker.failures == 0
    assert taker.last_bytes == path.stat().st_size
    assert 0 < taker.max_stall_ms == taker.last_max_slice_ms
    assert taker.last_fork_ms <= taker.last_capture_ms
    loaded, info = read_snapshot(path)
    assert info.digest == expected["digest"] and info.node_count == len(tree.nodes)
    assert tree_state(loaded) == expected
    assert leftovers(tmp_path) == []


def test_writes_during_the_childs_run_are_in_the_log_not_in_the_snapshot(tmp_path, monkeypatch):
    """Txns keep committing (and being logged) while the child writes; the snapshot holds the tree
    as of the fork, and recovery (snapshot + log replay) equals the live tree."""
    monkeypatch.setattr(snapshots, "_CHILD_DELAY_S", 0.3)  # the child inherits it at the fork

    async def run():
        st = Storage(tmp_path, force_sync=False, snap_count=10 ** 9, seed=1, snapshot_method="fork")
        st.recover()
        tree = DataTree()
        mk = TxnMaker()
        rng = random.Random(4)
        gen = random_txns(tree, mk, 10 ** 9, rng)
        txns = []

        async def log_some(n):
            batch = [next(gen) for _ in range(n)]
            txns.extend(batch)
            st.txnlog.append(batch)
            await st.txnlog.drain()
            st.logged(batch[-1][0].zxid, tree)
        for _ in range(30):
            await log_some(20)
        at_fork = tree.last_zxid
        state_at_fork = tree_state(tree)
        task = st.snapshot(tree)
        await asyncio.sleep(0)   # the task's first step runs up to the fork
        assert st.snapshots._child is not None
        during = 0
        while not task.done():
            await log_some(5)
            during += 5
            await asyncio.sleep(0.005)
        path = await task
        await log_some(10)
        final = tree_state(tree)
        await st.close()
        return path, at_fork, state_at_fork, during, final, st

    path, at_fork, state_at_fork, during, final, st = asyncio.run(run())
    assert path is not None and st.snapshots.last_method == "fork" and during > 0
    loaded, info = read_snapshot(path)
    assert info.zxid == at_fork < final["zxid"]
    assert tree_state(loaded) == state_at_fork
    rec = recover(tmp_path / "version-2", tmp_path / "version-2", freeze_gc=False)
    assert rec.snapshot_zxid == at_fork and rec.replayed >= during
    assert tree_state(rec.tree) == final


def _failing(kind):
    def write(tree, zxid, tmp, compressed, fsync, created_ms):
        open(tmp, "wb").write(b"half a snapshot")
        if kind == "raise":
            raise OSError(errno.EIO, "simulated disk error")
        os._exit(3)
    return write


@pytest.mark.parametrize("kind", ["raise", "exit"])
def test_a_failing_child_leaves_nothing_and_the_next_snapshot_works(tmp_path, monkeypatch, kind, caplog):
    tree = big_tree(5_000)
    taker = SnapshotTaker(tmp_path, method="fork")

    async def run():
        with monkeypatch.context() as m:
            m.setattr(snapshots, "_write_tree_file", _failing(kind))
            bad = await taker.take(tree)
        assert bad is None and taker.failures == 1 and not taker.in_progress
        assert list_snapshots(tmp_path) == [] and leftovers(tmp_path) == []
        good = await taker.take(tree)
        taker.close()
        return good
    good = asyncio.run(run())
    assert good is not None and taker.count == 1
    assert ("simulated disk error" if kind == "raise" else "exit status 3") in caplog.text


def test_a_child_that_cannot_create_its_file_fails_cleanly(tmp_path, caplog):
    tree = big_tree(2_000)
    (tmp_path / f"snapshot.{tree.last_zxid:x}.tmp").mkdir()   # root ignores modes: block it this way
    taker = SnapshotTaker(tmp_path, method="fork")
    assert take(taker, tree) is None
    assert taker.failures == 1 and list_snapshots(tmp_path) == []
    assert "IsADirectoryError" in caplog.text


def test_a_child_reporting_another_digest_is_not_renamed(tmp_path, monkeypatch, caplog):
    real = snapshots._write_tree_file

    def lying(*a):
        n, digest, size = real(*a)
        return n, digest ^ 1, size
    monkeypatch.setattr(snapshots, "_write_tree_file", lying)
    tree = big_tree(2_000)
    assert tree.digest and tree.digest_settled   # the parent notes a digest only if it is free
    taker = SnapshotTaker(tmp_path, method="fork")
    assert take(taker, tree) is None
    assert list_snapshots(tmp_path) == [] and leftovers(tmp_path) == []
    assert "snapshot abandoned" in caplog.text


def test_the_child_checks_its_encoder_against_its_image_of_the_tree(tmp_path, monkeypatch, caplog):
    """With node digest shares pending at the fork the child settles them in its copy and compares."""
    from coord.core import snapformat

    class Skewed(snapformat.SnapshotEncoder):
        def add_batch(self, paths, nodes):
            super().add_batch(paths, nodes)
            self.digest ^= 1
    monkeypatch.setattr(snapformat, "SnapshotEncoder", Skewed)
    tree = big_tree(2_000)
    assert not tree.digest_settled
    taker = SnapshotTaker(tmp_path, method="fork")
    assert take(taker, tree) is None
    assert list_snapshots(tmp_path) == [] and leftovers(tmp_path) == []
    assert "but the tree has" in caplog.text
    assert not tree.digest_settled   # the parent did not pay for settling


def test_fork_failure_falls_back_to_the_event_loop(tmp_path, monkeypatch):
    def no_fork():
        raise OSError(errno.ENOMEM, "Cannot allocate memory")
    monkeypatch.setattr(os, "fork", no_fork)
    tree = big_tree(3_000)
    taker = SnapshotTaker(tmp_path, method="fork")
    path = take(taker, tree)
    assert path is not None and taker.last_method == "inloop" and taker.fork_fallbacks == 1
    assert tree_state(read_snapshot(path)[0]) == tree_state(tree)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_stopping_during_a_snapshot_kills_the_child_and_removes_its_file(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshots, "_CHILD_DELAY_S", 30.0)

    async def run():
        st = Storage(tmp_path, force_sync=False, snapshot_method="fork")
        st.recover()
        tree = big_tree(2_000)
        st.snapshot(tree)
        while not leftovers(st.snap_dir):   # the child has written (and now sleeps)
            await asyncio.sleep(0.01)
        pid = st.snapshots._child.pid
        t0 = time.monotonic()
        await st.close()
        return pid, time.monotonic() - t0, st
    pid, took, st = asyncio.run(run())
    assert took < 5 and not _alive(pid)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)   # reaped: no zombie
    assert leftovers(st.snap_dir) == [] and list_snapshots(st.snap_dir) == []


def test_a_hung_child_is_killed_and_the_next_snapshot_works(tmp_path, monkeypatch, caplog):
    """A child that never reports (here: it sleeps past the bound) is killed after child_timeout_s;
    the snapshot counts as failed, its tmp file goes, and the next snapshot is taken as usual."""
    tree = big_tree(2_000)
    monkeypatch.setattr(snapshots, "_CHILD_DELAY_S", 30.0)   # the child inherits it at the fork
    taker = SnapshotTaker(tmp_path, method="fork")
    taker.child_timeout_s = 0.5

    async def run():
        t0 = time.monotonic()
        first = await taker.take(tree)
        took = time.monotonic() - t0
        monkeypatch.setattr(snapshots, "_CHILD_DELAY_S", 0.0)
        second = await taker.take(tree)
        taker.close()
        return first, took, second
    first, took, second = asyncio.run(run())
    assert first is None and took < 10, took
    assert taker.failures == 1 and "did not finish within 0.5 s" in caplog.text
    assert second is not None and taker.count == 1 and not taker.in_progress
    assert leftovers(tmp_path) == []
    assert read_snapshot(second)[1].node_count == len(tree.nodes)


def test_in_loop_method_selected_by_zoo_cfg(tmp_path):
    cfg = parse(f"dataDir={tmp_path}\nclientPort=2181\ncoord.snapshotMethod=inloop\n")
    assert cfg.snapshot_method == "inloop" and not cfg.warnings
    st = Storage.from_config(cfg)
    assert st.snapshots.method == "inloop"
    tree = big_tree(3_000)
    path = take(st.snapshots, tree)
    assert path is not None and st.snapshots.last_method == "inloop"
    assert tree_state(read_snapshot(path)[0]) == tree_state(tree)
    assert Storage.from_config(parse(f"dataDir={tmp_path}\n")).snapshots.method == snapshots.DEFAULT_METHOD
    assert parse(f"dataDir={tmp_path}\ncoord.snapshotMethod=fork\n").snapshot_method == "fork"


def test_a_bad_snapshot_method_fails_at_start_naming_the_line():
    with pytest.raises(ConfigError, match=r"zoo.cfg:2: coord.snapshotMethod must be fork, inloop or auto"):
        parse("dataDir=/tmp/x\ncoord.snapshotMethod=thread\n")


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
    return out


def test_kill_9_during_a_forked_snapshot_then_restart_recovers(tmp_path, monkeypatch):
    """The server is killed while its child has written the whole tmp file (and is held before it
    reports): the orphan never renames it (only the parent renames), dies with its parent, and the
    restarted server removes the tmp file and has every acknowledged write."""
    from kazoo.client import KazooClient

    from tests.support.coord_server import CoordProcess
    delay = 3.0
    monkeypatch.setenv("COORD_TEST_SNAPSHOT_CHILD_DELAY_S", str(delay))
    srv = CoordProcess(tmp_path / "coord", force_sync=True, extra_cfg={"snapCount": "200",
                                                                        "coord.snapshotMethod": "fork"})
    srv.start()
    snap_dir = srv.data_dir / "version-2"
    zk = KazooClient(hosts=srv.connect_string, timeout=10)
    zk.start(timeout=15)
    acked = []
    try:
        deadline = time.monotonic() + 60
        while not leftovers(snap_dir):
            assert time.monotonic() < deadline, "no forked snapshot started"
            acked.append(zk.create(f"/n{len(acked)}", b"x"))
        tmp_names = leftovers(snap_dir)
        for _ in range(50):   # the loop keeps serving while the child works
            acked.append(zk.create(f"/n{len(acked)}", b"y"))
        kids = _children(srv.proc.pid)
        assert kids, "the snapshot child should be running"
        renamed_before = {p.name for p in snap_dir.glob("snapshot.*") if not p.name.endswith(".tmp")}
        srv.stop(kill=True)
    finally:
        zk.stop()
        zk.close()
    t_kill = time.monotonic()
    while any(_alive(k) for k in kids):
        assert time.monotonic() - t_kill < 10, "the orphaned child outlived its parent"
        time.sleep(0.05)
    if snapshots._prctl is not None:   # killed with its parent, not only when it reports
        assert time.monotonic() - t_kill < delay
    time.sleep(delay + 0.5)   # past the moment the child would have reported
    renamed_after = {p.name for p in snap_dir.glob("snapshot.*") if not p.name.endswith(".tmp")}
    assert renamed_after == renamed_before
    assert {n[:-4] for n in tmp_names}.isdisjoint(renamed_after)
    srv.start()
    try:
        assert leftovers(snap_dir) == []   # no txn yet since the start, so no new snapshot either
        zk = KazooClient(hosts=srv.connect_string, timeout=10)
        zk.start(timeout=15)
        try:
            for p in acked:
                assert zk.exists(p) is not None, f"acknowledged {p} lost"
        finally:
            zk.stop()
            zk.close()
        assert "removing unfinished snapshot" in srv.log_text()
    finally:
        srv.stop()


def _nice_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])   # field 19: nice


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("nice", [19, 0])
def test_the_snapshot_child_runs_at_its_own_niceness(tmp_path, monkeypatch, nice):
    """The child runs at COORD_SNAPSHOT_CHILD_NICE (default 0: the server's own; an A/B knob of
    issue 17); the server's own niceness is unchanged."""
    monkeypatch.setattr(snapshots, "_CHILD_NICE", nice)
    monkeypatch.setattr(snapshots, "_CHILD_DELAY_S", 1.0)   # read in the child, after the fork
    tree = big_tree(2_000)
    taker = SnapshotTaker(tmp_path, method="fork")
    parent_nice = os.getpriority(os.PRIO_PROCESS, 0)
    seen = []

    async def run():
        task = asyncio.ensure_future(taker.take(tree))
        deadline = time.monotonic() + 30
        while not seen:
            assert time.monotonic() < deadline, "no snapshot child seen"
            child = taker._child
            if child is not None and leftovers(tmp_path):   # past _child_detach: the file is open
                seen.append(_nice_of(child.pid))
            await asyncio.sleep(0.01)
        try:
            return await task
        finally:
            taker.close()
    assert asyncio.run(run()) is not None
    assert seen == [min(19, parent_nice + nice)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == parent_nice


def test_a_bad_child_niceness_falls_back_to_the_default():
    assert snapshots.child_nice(None) == snapshots.child_nice("") == snapshots.CHILD_NICE == 0
    assert snapshots.child_nice("5") == 5
    for bad in ("-1", "20", "high"):
        assert snapshots.child_nice(bad) == snapshots.CHILD_NICE

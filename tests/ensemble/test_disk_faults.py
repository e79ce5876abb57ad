"""Disk faults on real ensemble members, coord and ZooKeeper 3.8, under the checked workload.

- A full disk: every member's dataLogDir is a small tmpfs made here (mount needs root; without it
  the test skips, and fails under CI=1); the leader's, then a follower's, is filled up under write
  load. docs/operations.md: a coord member whose txn log cannot write exits (status 1, one line
  naming the file and errno) and rejoins when restarted once space is back. The others keep serving.
- fsync errors: while <member dir>/fail-fsync exists, the member's log fsyncs fail with EIO; for coord
  through its test-only hook (COORD_TEST_FAIL_FSYNC, coord/aio/txnlog.py), for ZooKeeper's JVM
  through an LD_PRELOAD shim built here with the same contract (every fsync/fdatasync of the
  process fails, skipped without a C compiler). Same expectations as for a full disk.
- A torn final record: a member killed with -9 under load, the last record of its newest log then
  cut in half (and, on a second member, garbled) by hand before the restart: recovery drops the
  torn tail, the member rejoins and catches up.

In every case no acknowledged write (or sequential append) may be lost and the history must check
clean. Each test prints a `RESULT` line: how the member reacted and the seconds to recover.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.ensemble import Ensemble, coord_ensemble_available
from tests.support.faultrun import run_checked

KINDS = ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)]
FLAG = "fail-fsync"           # relative: each member's working directory is its own


def unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def ensemble(tmp_path: Path, kind: str, **kw) -> Ensemble:
    if kind == "coord" and not coord_ensemble_available():
        pytest.skip("the Zab quorum peer (coord.core.zab.peer) has not landed yet")
    # dataLogDir apart from dataDir (snapshots stay off the small disk); 1 MiB preallocation blocks
    return Ensemble(tmp_path, 3, kind=kind, proxied=False,
                    extra_cfg={"dataLogDir": "datalog", "preAllocSize": "1024", "snapCount": "100000"}, **kw)


@pytest.fixture
def mounts():
    made: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            unavailable(f"cannot mount a tmpfs (needs root): {r.stderr.strip()}")
        made.append(path)
        return path
    yield mount
    for p in reversed(made):
        subprocess.run(["umount", "-l", str(p)], capture_output=True)


def wait_until(pred, timeout: float, step: float = 0.1) -> float | None:
    """Seconds until pred() held, or None if it never did within timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return round(time.monotonic() - t0, 2)
        time.sleep(step)
    return None


class BulkWriter:
    """A client creating 16 KiB znodes while `on` is set (to fill a disk fast); keeps what was acked."""

    def __init__(self, hosts: str):
        from kazoo.client import KazooClient
        self.zk = KazooClient(hosts=hosts, timeout=6, randomize_hosts=False)
        self.zk.start(timeout=30)
        self.zk.ensure_path("/fill")
        self.on = threading.Event()
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        i = 0
        value = os.urandom(16 * 1024)
        while not self.stop.is_set():
            if not self.on.wait(0.1):
                continue
            i += 1
            try:
                self.zk.create_async(f"/fill/n{i}", value).get(timeout=5)
                self.acked.append(f"/fill/n{i}")
            except Exception:
                time.sleep(0.05)

    def close(self, hosts: str) -> int:
        """Stop, then check every acknowledged bulk znode is there (from a fresh session)."""
        from kazoo.client import KazooClient
        self.stop.set()
        self.t.join(15)
        self.zk.stop()
        self.zk.close()
        zk = KazooClient(hosts=hosts, timeout=10)
        zk.start(timeout=30)
        try:
            zk.sync("/fill")
            have = {f"/fill/{n}" for n in zk.get_children("/fill")}
        finally:
            zk.stop()
            zk.close()
        missing = [p for p in self.acked if p not in have]
        assert not missing, f"acknowledged bulk writes lost: {missing[:5]}"
        return len(self.acked)


def fill(mnt: Path, leave: int) -> Path:
    """Take all but `leave` bytes of the file system at mnt with one file."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(free - leave, 4096))
    return filler


def wait_member_serves(m, timeout: float = 90) -> float | None:
    """Seconds until m (restarted) serves as leader or follower; None if its process exited first."""
    t = wait_until(lambda: not m.alive or m.mode() in ("leader", "follower"), timeout)
    assert t is not None, f"server {m.sid} not serving after {timeout}s:\n{m.log_text()[-2000:]}"
    return t if m.alive else None


def stopped_or_erring(m, needle: str):
    return lambda: not m.alive or needle in m.log_text()


def fault_then_recover(ens: Ensemble, sid: int, notes: dict, tag: str, inflict, undo, needle: str):
    """Inflict a disk fault on sid, see how it reacts, undo it, restart it if it exited, and time
    how long until every member serves again. The rest of the ensemble must serve throughout."""
    m = ens.members[sid]
    others = [s for s in ens.members if s != sid]
    inflict()
    reacted = wait_until(stopped_or_erring(m, needle), 60)
    assert reacted is not None, f"server {sid} never noticed the fault:\n{m.log_text()[-2000:]}"
    exited = wait_until(lambda: not m.alive, 15 if ens.kind == "coord" else 3)  # logged it, now exits?
    ens.wait_serving(sids=others, wait=60)       # a quorum remains
    notes[f"{tag}_reacted_s"] = reacted
    notes[f"{tag}_exited"] = m.proc.returncode if exited is not None else "no"
    if ens.kind == "coord":
        # docs/operations.md: the member exits with status 1 and says why, naming the log file
        assert exited is not None, f"coord member {sid} kept running:\n{m.log_text()[-2000:]}"
        assert m.proc.returncode == 1
        text = m.log_text()
        assert f"server {sid} stopped: the txn log cannot write ([Errno" in text, text[-2000:]
        assert "datalog/version-2/log." in text, text[-2000:]
    t0 = time.monotonic()
    undo()
    if not m.alive:
        m.kill()                                 # reap it, then start it on the same data
        m.start()
    assert wait_member_serves(m) is not None, f"server {sid} exited:\n{m.log_text()[-2000:]}"
    ens.wait_serving(wait=90)
    notes[f"{tag}_recovered_s"] = round(time.monotonic() - t0, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_full_disk_on_leader_then_follower(tmp_path, kind, mounts):
    ens = ensemble(tmp_path, kind)
    for sid, m in ens.members.items():
        mounts(m.dir / "datalog", "48m")
    try:
        ens.start()
        bulk = BulkWriter(ens.connect_string())

        def scenario(leader, followers, notes):
            time.sleep(1.0)
            for tag in ("leader", "follower"):
                lead = ens.wait_serving()
                sid = lead if tag == "leader" else next(s for s in ens.members if s != lead)
                filler = {}

                def inflict(sid=sid):
                    filler["f"] = fill(ens.members[sid].dir / "datalog", 512 * 1024)
                    bulk.on.set()

                def undo():
                    bulk.on.clear()
                    filler["f"].unlink()
                fault_then_recover(ens, sid, notes, tag, inflict, undo, "No space left on device")
                time.sleep(1.0)
        run_checked(ens, "full_disk", scenario, on_leader=1)
        notes_bulk = bulk.close(ens.connect_string())
        print(f"RESULT full_disk kind={kind} bulk_acked={notes_bulk}")
        assert notes_bulk > 10
    finally:
        ens.stop()


SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
static int failing(void) {
    const char *f = getenv("COORD_TEST_FAIL_FSYNC");
    return f && access(f, F_OK) == 0;
}
int fsync(int fd) {
    static int (*real)(int);
    if (failing()) { errno = EIO; return -1; }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
int fdatasync(int fd) {
    static int (*real)(int);
    if (failing()) { errno = EIO; return -1; }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
"""


def fsync_shim(tmp_path: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        unavailable("no C compiler for the fsync-failure shim of ZooKeeper's JVM")
    src = tmp_path / "failfsync.c"
    src.write_text(SHIM)
    so = tmp_path / "failfsync.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(so), str(src), "-ldl"], check=True)
    return so


@pytest.mark.parametrize("kind", KINDS)
def test_fsync_errors_on_leader_then_follower(tmp_path, kind, monkeypatch):
    monkeypatch.setenv("COORD_TEST_FAIL_FSYNC", FLAG)
    if kind == "zookeeper":
        monkeypatch.setenv("LD_PRELOAD", str(fsync_shim(tmp_path)))
    ens = ensemble(tmp_path / "ens", kind)
    try:
        ens.start()

        def scenario(leader, followers, notes):
            time.sleep(1.0)
            for tag in ("leader", "follower"):
                lead = ens.wait_serving()
                sid = lead if tag == "leader" else next(s for s in ens.members if s != lead)
                flag = ens.members[sid].dir / FLAG
                fault_then_recover(ens, sid, notes, tag, flag.touch, flag.unlink, "Input/output error")
                time.sleep(1.0)
        run_checked(ens, "fsync_errors", scenario, on_leader=1)
    finally:
        ens.stop()


def record_starts(data: bytes, kind: str) -> list[int]:
    """Offsets of the intact records of one log file, in order (coord's format or ZooKeeper's)."""
    if kind == "coord":
        from coord.core import logformat
        ends = [pos for _h, _t, pos in logformat.iter_records(data)]
        return [logformat.FILE_HEADER_SIZE] + ends[:-1] if ends else []
    starts, p = [], 16                     # ZooKeeper: header, then [crc u64][len u32][txn][0x42]
    while p + 12 <= len(data):
        ln = int.from_bytes(data[p + 8:p + 12], "big")
        if ln == 0 or p + 13 + ln > len(data):
            break
        starts.append(p)
        p += 13 + ln
    return starts


def damage_last_record(m, kind: str, how: str) -> tuple[Path, int]:
    """Cut the last record of m's newest log with records in half, or garble bytes in its middle."""
    logs = sorted((m.dir / "datalog" / "version-2").glob("log.*"), key=lambda p: int(p.name[4:], 16))
    for path in reversed(logs):
        data = bytearray(path.read_bytes())
        starts = record_starts(bytes(data), kind)
        if starts:
            break
    else:
        raise AssertionError(f"no txn log record to damage in {m.dir}")
    s = starts[-1]
    rec_len = (int.from_bytes(data[s:s + 4], "big") + 8 if kind == "coord"
               else int.from_bytes(data[s + 8:s + 12], "big") + 13)
    mid = s + rec_len // 2
    if how == "truncate":
        with open(path, "r+b") as f:
            f.truncate(mid)                   # a write cut short in the middle of the record
    else:
        data[mid:mid + 8] = bytes(b ^ 0xA5 for b in data[mid:mid + 8])
        path.write_bytes(bytes(data))         # bytes of the last record garbled, padding kept
    return path, s


@pytest.mark.parametrize("kind", KINDS)
def test_torn_final_record_after_kill_9(tmp_path, kind):
    ens = ensemble(tmp_path, kind)
    try:
        ens.start()

        def scenario(leader, followers, notes):
            time.sleep(2.0)
            for tag, how in (("follower", "truncate"), ("leader", "garble")):
                lead = ens.wait_serving()
                sid = lead if tag == "leader" else next(s for s in ens.members if s != lead)
                m = ens.members[sid]
                m.kill()                         # kill -9 under load
                path, at = damage_last_record(m, kind, how)
                ens.wait_serving(sids=[s for s in ens.members if s != sid], wait=60)
                time.sleep(0.5)
                t0 = time.monotonic()
                m.start()
                if wait_member_serves(m) is None:
                    # ZooKeeper 3.8 refuses a log whose last record fails its checksum (only a record
                    # cut short counts as the end of the log); an operator cuts it off and restarts
                    assert kind == "zookeeper" and how == "garble", m.log_text()[-3000:]
                    assert "CRC check failed" in m.log_text(), m.log_text()[-3000:]
                    notes[f"{tag}_{how}_refused"] = "CRC check failed"
                    m.kill()
                    with open(path, "r+b") as f:
                        f.truncate(at)
                    m.start()
                    assert wait_member_serves(m) is not None, m.log_text()[-3000:]
                else:
                    notes[f"{tag}_{how}_refused"] = "no"
                ens.wait_serving(wait=90)
                notes[f"{tag}_recovered_s"] = round(time.monotonic() - t0, 2)
                if kind == "coord":
                    assert f"{path.name}: torn tail" in m.log_text(), m.log_text()[-2000:]
                time.sleep(1.0)
        run_checked(ens, "torn_tail", scenario, on_leader=1)
    finally:
        ens.stop()

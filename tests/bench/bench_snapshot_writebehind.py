"""The txn log's fdatasync latency while a snapshot-sized file is written beside it on the same file
system: one fsync at the end (A, as the snapshot child did) against write-behind, sync_file_range
per MiB with a wait for the previous MiB (B, coord.aio.snapshots since issue 17).

A 150-byte write + fdatasync loop (preallocated file, as coord.aio.txnlog) runs in a thread; the
other writes a 40 MiB file in 1 MiB runs; over a fixed 2.5 s window from the file's start: the log's
fdatasync count, p50, p99, max and how many took 10 ms or more. Rounds alternate A and B.

    python -m tests.bench.bench_snapshot_writebehind [--rounds 4] [--dir DIR] [--mib 40]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

from coord.aio import snapshots

MIB = 1 << 20


def _snapshot_file(path: str, mib: int, write_behind: bool) -> float:
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    chunk = os.urandom(MIB)
    for i in range(mib):
        os.write(fd, chunk)
        if write_behind:
            snapshots._sync_file_range(fd, i * MIB, MIB, snapshots._SFR_WRITE)
            if i:
                snapshots._sync_file_range(fd, (i - 1) * MIB, MIB, snapshots._SFR_WAIT_ALL)
        time.sleep(0.002)   # the child encodes between runs
    os.fsync(fd)
    os.close(fd)
    os.unlink(path)
    return time.perf_counter() - t0


def _log_loop(path: str, stop: threading.Event, lat: list[float]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.posix_fallocate(fd, 0, 64 * MIB)
    rec = b"x" * 150
    try:
        while not stop.is_set():
            os.write(fd, rec)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        os.unlink(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--mib", type=int, default=40)
    a = ap.parse_args()
    if snapshots._sync_file_range is None:
        raise SystemExit("sync_file_range is not available here (Linux only)")
    d = tempfile.mkdtemp(dir=a.dir, prefix="writebehind-")
    for _ in range(a.rounds):
        for mode in "AB":
            lat: list[float] = []
            stop = threading.Event()
            th = threading.Thread(target=_log_loop, args=(f"{d}/log", stop, lat))
            th.start()
            time.sleep(0.3)
            n0 = len(lat)
            dt = _snapshot_file(f"{d}/snap.tmp", a.mib, mode == "B")
            time.sleep(max(0.0, 2.5 - dt))
            stop.set()
            th.join()
            w = sorted(lat[n0:])
            print(f"{mode} ({'write-behind' if mode == 'B' else 'one fsync'}): file {dt:.2f} s; log fdatasyncs "
                  f"{len(w)}: p50 {w[len(w) // 2]:.2f} p99 {w[int(len(w) * 0.99)]:.1f} max {w[-1]:.1f} ms, "
                  f">= 10 ms {sum(x >= 10 for x in w)}; load {os.getloadavg()[0]:.0f}", flush=True)
    os.rmdir(d)


if __name__ == "__main__":
    main()

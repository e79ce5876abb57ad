"""`coord bench-storage`: recovery start-up time, resident memory and snapshot stall vs ZooKeeper 3.8.

Both servers get the same data: a tree of N znodes (100-byte data) in a snapshot plus T logged txns
after it (setData, create, delete). ZooKeeper's data dir is written in ZooKeeper's own formats
(snapshot.<zxid>, log.<zxid>: jute, Adler32); coord's is its import of that snapshot
(`coord data import-zookeeper`) plus a coord log of the same T txns. Each server is started with
forceSync=yes, and the start-up time runs from launching the process to the first answered getData.
Resident memory (VmRSS) is read right after. The snapshot stall is the longest latency seen by a
client issuing getData back to back while the server writes a snapshot of the loaded tree (coord
also reports its longest event-loop slice inside the snapshot).
"""
from __future__ import annotations

import json
import os
import random
import re
import statistics
import shutil
import socket
import struct
import sys
import time
import zlib
from pathlib import Path

import click

from coord.jute import records as R

_LEN = struct.Struct(">i")
_REPLY = struct.Struct(">iqi")


def _support():
    """The process launchers of the test suite (tests/support), from a source checkout."""
    try:
        import tests.support.real_zk  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support import coord_server, real_zk
    return coord_server, real_zk
OPEN = [R.ACL(31, R.Id("world", "anyone"))]


# -- ZooKeeper-format writers (for building the data set) -------------------------------------------

def _jstr(s: str) -> bytes:
    b = s.encode()
    return _LEN.pack(len(b)) + b


def _jbuf(b: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if b is None else _LEN.pack(len(b)) + b


_ZSTAT = struct.Struct(">qqqqiiiqq")


def build_dataset(out: Path, n_nodes: int, n_txns: int, seed: int = 1, echo=print) -> dict:
    """ZooKeeper data dir (snapshot + log) and the equivalent coord data dir under out/."""
    from coord.core import logformat
    rng = random.Random(seed)
    zk_dir = out / "zk" / "version-2"
    base_dir = out / "zk-base" / "version-2"
    for d in (zk_dir, base_dir):
        d.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000_000
    dirs = max(1, n_nodes // 1000)
    per = n_nodes // dirs
    snap_zxid = n_nodes + dirs + 1
    # the tree: /bench/dNNNN/nNNNNNNN, czxids in creation order
    parts = [b"ZKSN", _LEN.pack(2), struct.pack(">q", -1), _LEN.pack(0), _LEN.pack(0)]

    def node(path, data, czxid, cversion=0, pzxid=None):
        parts.append(_jstr(path))
        parts.append(_jbuf(data))
        parts.append(struct.pack(">q", -1))
        parts.append(_ZSTAT.pack(czxid, czxid, t0 + czxid, t0 + czxid, 0, cversion, 0, 0,
                                 czxid if pzxid is None else pzxid))
    node("", b"", 0, 2, dirs + 1)  # root: /zookeeper and /bench
    node("/zookeeper", b"", 0, 0, 0)
    node("/zookeeper/config", b"", 0, 0, 0)
    node("/zookeeper/quota", b"", 0, 0, 0)
    z = 1
    node("/bench", b"", z, dirs, dirs + 1)
    versions = {}
    leaves = []
    nz = dirs + 1
    for d in range(dirs):
        dz = 2 + d
        first = nz + 1
        last = nz + per
        node(f"/bench/d{d:04d}", b"", dz, per, last)
        for i in range(per):
            nz += 1
            p = f"/bench/d{d:04d}/n{d * per + i:07d}"
            node(p, rng.randbytes(100), nz)
            leaves.append(p)
            versions[p] = 0
        _ = first
    assert nz + 0 <= snap_zxid
    body = b"".join(parts)
    body += _jstr("/")
    seal = struct.pack(">q", zlib.adler32(body)) + _jstr("/")
    snap_bytes = body + seal
    for d in (zk_dir, base_dir):
        (d / f"snapshot.{snap_zxid:x}").write_bytes(snap_bytes)
    echo(f"  ZooKeeper snapshot: {n_nodes} znodes, {len(snap_bytes) >> 20} MiB")
    # the txns after it
    txns = []
    zx = snap_zxid
    cvers = {f"/bench/d{d:04d}": per for d in range(dirs)}
    alive = list(leaves)
    created = 0
    for _ in range(n_txns):
        zx += 1
        r = rng.random()
        if r < 0.6:
            p = alive[rng.randrange(len(alive))]
            versions[p] += 1
            hdr = R.TxnHeader(0x77, zx, zx, t0 + zx, 5)
            txn = R.SetDataTxn(p, rng.randbytes(100), versions[p])
        elif r < 0.8:
            d = f"/bench/d{rng.randrange(dirs):04d}"
            created += 1
            p = f"{d}/new{created:07d}"
            cvers[d] += 1
            hdr = R.TxnHeader(0x77, zx, zx, t0 + zx, 1)
            txn = R.CreateTxn(p, rng.randbytes(100), OPEN, False, cvers[d])
            alive.append(p)
            versions[p] = 0
        else:
            i = rng.randrange(len(alive))
            p = alive[i]
            alive[i] = alive[-1]
            alive.pop()
            hdr = R.TxnHeader(0x77, zx, zx, t0 + zx, 2)
            txn = R.DeleteTxn(p)
        txns.append((hdr, txn))
    zlog = bytearray(b"ZKLG" + _LEN.pack(2) + struct.pack(">q", 0))
    for hdr, txn in txns:
        buf = hdr.encode() + txn.encode()
        zlog += struct.pack(">q", zlib.adler32(buf)) + _LEN.pack(len(buf)) + buf + b"\x42"
    (zk_dir / f"log.{snap_zxid + 1:x}").write_bytes(bytes(zlog))
    echo(f"  ZooKeeper log: {n_txns} txns")
    # coord: import the snapshot, then the same txns in a coord log
    from coord.zkimport import import_zookeeper
    coord_dir = out / "coord"
    res = import_zookeeper(out / "zk-base", coord_dir, force=True)
    res.tree = None
    (coord_dir / "version-2" / logformat.log_name(snap_zxid + 1)).write_bytes(
        logformat.file_header() + b"".join(logformat.encode_record(h, t) for h, t in txns))
    shutil.rmtree(out / "zk-base")
    meta = {"nodes": n_nodes, "txns": n_txns, "snap_zxid": snap_zxid, "last_zxid": zx,
            "probe": leaves[0]}
    (out / "meta.json").write_text(json.dumps(meta))
    echo(f"  coord data dir: {res.output.name} + log of {n_txns} txns")
    return meta


# -- a tiny raw client ------------------------------------------------------------------------------

class RawClient:
    def __init__(self, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = R.ConnectRequest(0, 0, 30000, 0, bytes(16)).encode()
        self.sock.sendall(_LEN.pack(len(body)) + body)
        self._frame()
        self.xid = 0

    def _recv(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            b = self.sock.recv(n - len(out))
            if not b:
                raise ConnectionError("closed")
            out += b
        return bytes(out)

    def _frame(self) -> bytes:
        n = _LEN.unpack(self._recv(4))[0]
        return self._recv(n)

    def call(self, op: int, body: bytes) -> int:
        self.xid += 1
        msg = struct.pack(">ii", self.xid, op) + body
        self.sock.sendall(_LEN.pack(len(msg)) + msg)
        while True:
            f = self._frame()
            xid, _zxid, err = _REPLY.unpack_from(f, 0)
            if xid == self.xid:
                return err

    def pipeline(self, op: int, bodies: list[bytes], depth: int = 64) -> int:
        """Send bodies with up to depth in flight; return the number of error replies."""
        errors = 0
        sent = done = 0
        while done < len(bodies):
            batch = []
            while sent < len(bodies) and sent - done < depth:
                self.xid += 1
                msg = struct.pack(">ii", self.xid, op) + bodies[sent]
                batch.append(_LEN.pack(len(msg)) + msg)
                sent += 1
            if batch:
                self.sock.sendall(b"".join(batch))
            f = self._frame()
            if _REPLY.unpack_from(f, 0)[2]:
                errors += 1
            done += 1
        return errors

    def close(self) -> None:
        self.sock.close()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _first_get(port: int, path: str, deadline: float) -> None:
    body = R.GetDataRequest(path, False).encode()
    while time.monotonic() < deadline:
        try:
            c = RawClient(port, timeout=5)
            err = c.call(4, body)
            c.close()
            if err == 0:
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError("server did not answer getData")


def _measure_stall(port: int, probe: str, write_paths: list[str], snap_dir: Path, before: set,
                   timeout: float = 300.0, done=None) -> dict:
    """getData back to back while writes push the server into a snapshot; latencies until it is on disk.

    done() says the snapshot is complete; by default, when a new snapshot file without .tmp exists
    (coord renames it into place at the end; ZooKeeper writes under the final name from the start,
    so it passes its own done)."""
    import threading
    lat = []
    stop = threading.Event()

    def probe_loop():
        c = RawClient(port)
        body = R.GetDataRequest(probe, False).encode()
        while not stop.is_set():
            t = time.perf_counter()
            c.call(4, body)
            lat.append((time.monotonic(), time.perf_counter() - t))
        c.close()
    th = threading.Thread(target=probe_loop, daemon=True)
    th.start()
    time.sleep(1.0)
    w = RawClient(port)
    bodies = [R.SetDataRequest(p, b"s" * 100, -1).encode() for p in write_paths]
    t_start = time.monotonic()
    i = 0
    new = set()
    while time.monotonic() - t_start < timeout:
        w.pipeline(5, bodies[i:i + 500])
        i = (i + 500) % max(1, len(bodies) - 500)
        new = {p.name for p in snap_dir.glob("snapshot.*")} - before
        if (done() if done is not None else new and not any(n.endswith(".tmp") for n in new)):
            break
    t_done = time.monotonic()
    time.sleep(0.5)
    stop.set()
    th.join(10)
    w.close()
    during = [d for t, d in lat if t_start <= t <= t_done]
    base = [d for t, d in lat if t < t_start]
    during.sort()
    return {"max_ms": max(during) * 1000 if during else float("nan"),
            "p99_ms": during[int(len(during) * 0.99)] * 1000 if during else float("nan"),
            "baseline_max_ms": max(base) * 1000 if base else float("nan"),
            "window_s": t_done - t_start, "snapshot": sorted(new)}


def run_zookeeper(ds: Path, meta: dict, work: Path, heap_mb: int, snap_count: int, snapshots: int = 1) -> dict:
    zk = _support()[1].RealZooKeeper(work / "zk", force_sync=True, heap_mb=heap_mb,
                       extra_cfg={"snapCount": str(snap_count), "autopurge.snapRetainCount": "3"})
    shutil.rmtree(zk.workdir, ignore_errors=True)
    shutil.copytree(ds / "zk", zk.data_dir)
    t0 = time.monotonic()
    zk.start(wait=600)
    _first_get(zk.client_port, meta["probe"], time.monotonic() + 600)
    startup = time.monotonic() - t0
    cpu = cpu_s(zk.proc.pid)
    time.sleep(1.0)
    rss = rss_mb(zk.proc.pid)
    snap_dir = zk.data_dir / "version-2"
    before = {p.name for p in snap_dir.glob("snapshot.*")}
    took = _zk_snapshot_ms(zk)  # its start-up snapshot
    stall = _measure_stall(zk.client_port, meta["probe"], _write_paths(meta), snap_dir, before,
                           done=lambda: _zk_snapshot_ms(zk)[1] >= took[1] + snapshots)
    after = _zk_snapshot_ms(zk)
    stall["rss_after_mb"] = rss_mb(zk.proc.pid)
    n = after[1] - took[1]
    stall["snapshot_write_s"] = (after[0] - took[0]) / n / 1000 if n > 0 else float("nan")
    zk.stop()
    return {"startup_s": startup, "startup_cpu_s": cpu, "rss_mb": rss, "stall": stall}


def _zk_snapshot_ms(zk) -> tuple[float, int]:
    """(total ms, count) of the snapshots ZooKeeper has taken (its `mntr` snapshottime summary)."""
    out = _support()[1].four_letter(zk.host, zk.client_port, "mntr")
    vals = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    return float(vals.get("zk_sum_snapshottime", "nan")), int(vals.get("zk_cnt_snapshottime", "0"))


def _write_paths(meta) -> list[str]:
    per = 1000
    return [f"/bench/d{(i // per):04d}/n{i:07d}" for i in range(0, min(meta["nodes"], 200_000), 7)
            if i % 5 == 0][:20000]


def run_coord(ds: Path, meta: dict, work: Path, snap_count: int, snapshot_method: str | None = None,
              snapshots: int = 1, collapse_huge_pages: bool = True) -> dict:
    cfg = {"snapCount": str(snap_count)}
    if snapshot_method:
        cfg["coord.snapshotMethod"] = snapshot_method
    if not collapse_huge_pages:
        cfg["coord.collapseHugePages"] = "false"
    c = _support()[0].CoordProcess(work / "coord", force_sync=True, extra_cfg=cfg)
    shutil.rmtree(c.workdir, ignore_errors=True)
    shutil.copytree(ds / "coord", c.data_dir)
    t0 = time.monotonic()
    c.start(wait=600)
    _first_get(c.client_port, meta["probe"], time.monotonic() + 600)
    startup = time.monotonic() - t0
    cpu = cpu_s(c.proc.pid)
    time.sleep(1.0)
    rss = rss_mb(c.proc.pid)
    snap_dir = c.data_dir / "version-2"
    before = {p.name for p in snap_dir.glob("snapshot.*")}
    stall = _measure_stall(c.client_port, meta["probe"], _write_paths(meta), snap_dir, before,
                           done=lambda: len(_SNAPSHOT_LINE.findall(c.log_text())) >= snapshots)
    stall["rss_after_mb"] = rss_mb(c.proc.pid)
    text = c.log_text()
    c.stop()
    slices = [float(m) for m in re.findall(r"longest slice ([0-9.]+) ms", text)]
    slices_cpu = [float(m) for m in re.findall(r"longest slice [0-9.]+ ms, ([0-9.]+) ms CPU", text)]
    stall["server_longest_slice_cpu_ms"] = max(slices_cpu) if slices_cpu else float("nan")
    captures = [float(m) for m in re.findall(r"capture ([0-9.]+) ms", text)]
    writes = re.findall(r"snapshot snapshot\.[0-9a-f]+: (\d+) nodes, \d+ sessions in ([0-9.]+)s", text)
    stall["snapshot_write_s"] = statistics.median(float(w[1]) for w in writes) if writes else float("nan")
    stall["server_longest_slice_ms"] = max(slices) if slices else float("nan")
    stall["server_capture_ms"] = max(captures) if captures else float("nan")
    stall["server_captures_ms"] = captures
    stall["server_forks_ms"] = [float(m) for m in re.findall(r"fork ([0-9.]+) ms, capture", text)]
    stall["huge_page_passes"] = re.findall(r"huge pages: (\d+ of \d+ 2 MiB ranges[^,]*),.*?([0-9.]+s)$", text, re.M)
    return {"startup_s": startup, "startup_cpu_s": cpu, "rss_mb": rss, "stall": stall}


_SNAPSHOT_LINE = re.compile(r"snapshot snapshot\.[0-9a-f]+: \d+ nodes")


def _median(runs: list[dict]) -> float:
    vals = [x["stall"]["snapshot_write_s"] for x in runs]
    vals = [v for v in vals if v == v]  # not NaN
    return statistics.median(vals) if vals else float("nan")


@click.command("bench-storage")
@click.option("--nodes", default=1_000_000, show_default=True, help="znodes in the snapshot (100-byte data).")
@click.option("--txns", default=100_000, show_default=True, help="logged txns after the snapshot.")
@click.option("--rounds", default=2, show_default=True, help="start-ups of each server (best is reported).")
@click.option("--snap-count", default=20_000, show_default=True, help="snapCount for the stall phase.")
@click.option("--zk-heap-mb", default=2048, show_default=True, help="ZooKeeper's -Xmx.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/tmp/coord-bench-storage"), show_default=True, help="Data sets are cached here.")
@click.option("--snapshot-method", type=click.Choice(["fork", "inloop"]), default=None,
              help="coord.snapshotMethod for coord (default: the server's default, fork).")
@click.option("--snapshots", default=3, show_default=True,
              help="snapshots each server takes in the stall phase (the first fork is not the steady state).")
@click.option("--collapse-huge-pages/--no-collapse-huge-pages", default=True, show_default=True,
              help="coord.collapseHugePages for coord (huge pages keep the fork short).")
@click.option("--json", "as_json", is_flag=True)
def bench_storage_command(nodes, txns, rounds, snap_count, zk_heap_mb, workdir, snapshot_method, snapshots,
                          collapse_huge_pages, as_json) -> None:
    """Recovery time, memory and snapshot stall vs ZooKeeper 3.8 (forceSync=yes, same machine, same run)."""
    from rich.console import Console
    from rich.table import Table
    console = Console(stderr=as_json)
    if not _support()[1].available():
        raise click.ClickException("real ZooKeeper 3.8 is not installed (apt-get install zookeeper)")
    ds = workdir / f"data-{nodes}-{txns}"
    if not (ds / "meta.json").exists():
        console.print(f"building the data set in {ds} ...")
        shutil.rmtree(ds, ignore_errors=True)
        ds.mkdir(parents=True)
        build_dataset(ds, nodes, txns, echo=console.print)
    meta = json.loads((ds / "meta.json").read_text())
    work = workdir / "run"
    results: dict[str, list[dict]] = {"zookeeper": [], "coord": []}
    for r in range(rounds):
        for name in ("zookeeper", "coord"):
            console.print(f"round {r + 1}/{rounds}: {name} ...")
            res = (run_zookeeper(ds, meta, work, zk_heap_mb, snap_count, snapshots) if name == "zookeeper"
                   else run_coord(ds, meta, work, snap_count, snapshot_method, snapshots, collapse_huge_pages))
            console.print(f"  start-up {res['startup_s']:.2f}s ({res['startup_cpu_s']:.1f}s CPU), "
                          f"RSS {res['rss_mb']:.0f} MiB, "
                          f"max getData latency during snapshot {res['stall']['max_ms']:.1f} ms, "
                          f"snapshot written in {res['stall']['snapshot_write_s']:.2f}s (median), "
                          f"RSS after the write phase {res['stall']['rss_after_mb']:.0f} MiB, "
                          f"load average {os.getloadavg()[0]:.1f}")
            if name == "coord":
                console.print(f"  per snapshot: loop held {res['stall']['server_captures_ms']} ms, of which fork() "
                              f"{res['stall']['server_forks_ms']} ms; huge-page passes {res['stall']['huge_page_passes']}")
            results[name].append(res)
    best = {k: min(v, key=lambda x: x["startup_s"]) for k, v in results.items()}
    zs, cs = best["zookeeper"], best["coord"]
    rows = [
        ("start-up time (s)", zs["startup_s"], cs["startup_s"], cs["startup_s"] / zs["startup_s"], "<= 1.0"),
        ("start-up CPU time, all threads (s)", zs["startup_cpu_s"], cs["startup_cpu_s"],
         cs["startup_cpu_s"] / zs["startup_cpu_s"], "(context)"),
        ("resident memory (MiB)", zs["rss_mb"], cs["rss_mb"], cs["rss_mb"] / zs["rss_mb"], "<= 1.0"),
        ("max getData latency while snapshotting (ms)", max(x["stall"]["max_ms"] for x in results["zookeeper"]),
         max(x["stall"]["max_ms"] for x in results["coord"]), None, "reported"),
        ("p99 getData latency while snapshotting (ms)", max(x["stall"]["p99_ms"] for x in results["zookeeper"]),
         max(x["stall"]["p99_ms"] for x in results["coord"]), None, "reported"),
        ("resident memory after the write phase (MiB)", max(x["stall"]["rss_after_mb"] for x in results["zookeeper"]),
         max(x["stall"]["rss_after_mb"] for x in results["coord"]), None, "reported"),
        ("time to write the snapshot under write load (s), median", _median(results["zookeeper"]),
         _median(results["coord"]), _median(results["coord"]) / _median(results["zookeeper"]), "reported"),
    ]
    out = {"nodes": nodes, "txns": txns, "results": results, "rows": [list(r) for r in rows],
           "coord_server_longest_slice_ms": max(x["stall"]["server_longest_slice_ms"] for x in results["coord"]),
           "coord_server_capture_ms": max(x["stall"]["server_capture_ms"] for x in results["coord"]),
           "coord_server_longest_slice_cpu_ms": max(x["stall"]["server_longest_slice_cpu_ms"]
                                                    for x in results["coord"])}
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    t = Table(title=f"storage: {nodes} znodes (100 B) + {txns} logged txns, forceSync=yes")
    for col in ("metric", "ZooKeeper 3.8", "coord", "ratio", "goal"):
        t.add_column(col)
    for name, z, c, ratio, goal in rows:
        t.add_row(name, f"{z:.2f}", f"{c:.2f}", "" if ratio is None else f"{ratio:.2f}", goal)
    console.print(t)
    console.print(f"coord's longest event-loop slice inside a snapshot: {out['coord_server_longest_slice_ms']:.1f} ms "
                  f"wall, {out['coord_server_longest_slice_cpu_ms']:.1f} ms CPU "
                  f"(capture {out['coord_server_capture_ms']:.1f} ms)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(bench_storage_command())

"""In-process benchmark of the pure request machine: no sockets, no event loop, no disk.

`python -m coord.bench.core [--ops K] [--connections N] [--depth D] [--phases P,..] [--preload N]
[--profile PHASE] [--metrics-cost R]`

It drives ServerCore exactly as the shell does, one "loop iteration" at a time: N connections each
deliver D request frames (pre-encoded by the bench client's encoder), the sequencer's txns are
encoded as log records (as TxnLog.append does) and reported durable, and the outboxes are drained.
It reports CPU time (time.process_time) per op, so the numbers stay comparable on a machine that
other work is also using, and --profile runs one phase under cProfile. This isolates the cost of the
core from the cost of the asyncio shell and the kernel; `coord bench` measures the whole server.

`--metrics-cost R` answers what the Prometheus provider costs the request path (the per-request
accounting of coord.core.requeststats; everything else in coord.aio.metrics is read at scrape
time): R rounds alternating accounting off and on in one process, the fastest round of each kept
(the least disturbed by other work on the machine), and their ratio per phase.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import struct
import time

from coord.bench.client import encode_batch
from coord.core import logformat
from coord.core.scratch import connected_core
from coord.core.server import ServerCore
from coord.jute import records as R

PHASES = ("create", "getData", "setData", "exists", "delete")
EXTRA_PHASES = ("multi",)   # the open-loop bench's multi: create + setData + delete of one fresh znode


def _frame(op: str, path: str, data: bytes, xid: int) -> bytes:
    """One request without its length prefix (what ServerCore.frame takes)."""
    from coord.bench.openloop import _CODES, _body
    return struct.pack(">ii", xid, _CODES[op]) + _body(op, path, data)


def _preload(core: ServerCore, n: int, data: bytes, depth: int = 1000) -> None:
    """n znodes under /b (/b/p0000000..), created through the core as requests: a large tree."""
    names = [f"/b/p{j:07d}" for j in range(n)]
    for base in range(0, n, depth):
        blob, offs = encode_batch("create", names[base:base + depth], data, 10_000_000 + base)
        for i in range(len(offs) - 1):
            core.frame(1, blob[offs[i] + 4:offs[i + 1]])
        _durable(core)
        core.drain()


def _durable(core: ServerCore) -> int:
    """As coord.core.scratch.logged, with the records encoded as the txn log would (their cost counts)."""
    recs = core.sequencer.drain_log()
    if recs:
        buf = bytearray()
        for hdr, txn in recs:
            buf += logformat.encode_record(hdr, txn)
        core.sequencer.on_logged(recs[-1][0].zxid)
    return len(recs)


def run(ops: int = 50_000, connections: int = 8, depth: int = 32, data_size: int = 100,
        profile: str | None = None, out=print, request_stats: bool = False,
        phases: tuple[str, ...] = PHASES, preload: int = 0, clock=time.process_time) -> dict[str, float]:
    """Returns CPU microseconds per op for each phase (`clock`'s units x 1e6 per op: with
    InstructionCounter, instructions per op x 1e6). `preload` znodes are created first (not timed),
    so the phases run on a large tree; the phases' own znodes are children of the same parent."""
    core = connected_core(connections, 1_700_000_000_000)
    if request_stats:
        from coord.core.requeststats import RequestStats
        core.collect_request_stats(RequestStats())
    conns = list(range(1, connections + 1))
    root = R.CreateRequest("/b", b"", [R.ACL(31, R.Id("world", "anyone"))], 0).encode()
    core.frame(1, struct.pack(">ii", 1, 1) + root)
    _durable(core)
    core.drain()
    data = b"x" * data_size
    if preload:
        t0 = time.process_time()
        _preload(core, preload, data)
        out(f"preloaded {preload:,} znodes in {time.process_time() - t0:.1f} s CPU")
    per = ops // connections
    names = {c: [f"/b/c{c:03d}n{j:07d}" for j in range(per)] for c in conns}
    result = {}
    for k, op in enumerate(phases):
        frames = {}
        for c in conns:
            if op in EXTRA_PHASES:
                frames[c] = [_frame(op, f"/b/m{c:03d}n{j:07d}", data, 100 + per * k + j) for j in range(per)]
                continue
            blob, offs = encode_batch(op, names[c], data, 100 + per * k)
            frames[c] = [blob[offs[i] + 4:offs[i + 1]] for i in range(len(offs) - 1)]
        prof = cProfile.Profile() if profile == op else None
        if prof:
            prof.enable()
        t0 = clock()
        replies = 0
        for base in range(0, per, depth):
            for c in conns:
                for f in frames[c][base:base + depth]:
                    core.frame(c, f)
            _durable(core)
            out_, _closing = core.drain()
            for chunks in out_.values():
                replies += len(chunks)
        dt = clock() - t0
        if prof:
            prof.disable()
        n = per * connections
        if replies != n:
            raise AssertionError(f"{op}: {replies} replies for {n} requests")
        result[op] = dt / n * 1e6
        out(f"{op:8s} {result[op]:7.1f} us/op CPU  ({n / dt:,.0f} ops per CPU-second)")
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
    return result


def metrics_cost(rounds: int, ops: int, connections: int, depth: int, data_size: int, out=print,
                 clock=time.process_time, unit: str = "us/op", scale: float = 1.0,
                 phases: tuple[str, ...] = PHASES) -> dict:
    """{phase: (best off, best on, on/off)} over `rounds` alternating rounds, per op in `clock`'s
    units x 1e6 x `scale` (CPU us by default; instructions with icount_clock and scale 1e-6)."""
    best: dict[bool, dict[str, float]] = {False: {}, True: {}}
    for r in range(rounds):
        for on in ((False, True) if r % 2 == 0 else (True, False)):
            got = run(ops, connections, depth, data_size, out=lambda *_: None, request_stats=on, clock=clock,
                      phases=phases)
            for op, v in got.items():
                best[on][op] = min(v * scale, best[on].get(op, v * scale))
    res = {op: (best[False][op], best[True][op], best[True][op] / best[False][op]) for op in phases}
    for op, (off, on, ratio) in res.items():
        out(f"{op:8s} off {off:9.2f} {unit}  on {on:9.2f} {unit}  on/off {ratio:.4f}  (+{on - off:.1f})")
    return res


def icount_clock():
    """A clock counting this process's instructions, when it runs under valgrind's callgrind
    (coord.bench.metrics_icount.InstructionCounter dumping its own pid): deterministic where CPU
    time on this shared VM is not; the JIT's compiled code is what is counted."""
    import os
    import tempfile
    from pathlib import Path

    from coord.bench.metrics_icount import InstructionCounter
    return InstructionCounter(os.getpid(), Path(os.environ.get("COORD_ICOUNT_DIR", tempfile.gettempdir())))


def _reexec_under_callgrind() -> None:
    """Run this same command again under callgrind (and the server interpreter, PyPy), once."""
    import os
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    from coord import runtime
    from coord.bench.metrics_icount import missing, server_interpreter
    if os.environ.get("COORD_ICOUNT_DIR"):
        return
    why = missing()
    if why:
        raise SystemExit(f"--icount: {why}; scripts/setup.sh installs it")
    vg = shutil.which("valgrind")
    work = tempfile.mkdtemp(prefix="coord-core-icount-")
    py = server_interpreter()
    src = str(Path(__file__).resolve().parents[2])   # this coord source, whatever that interpreter has installed
    env = {**os.environ, **runtime.GC_ENV, "COORD_ICOUNT_DIR": work,
           "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    cmd = [vg, "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={work}/callgrind.out.%p",
           py, "-m", "coord.bench.core", *sys.argv[1:]]
    os.execve(vg, cmd, env)


def accounting_ns(calls: int = 1_000_000, rounds: int = 5, namespaces: int = 1) -> float:
    """ns per read of the metrics' request accounting alone (RequestStats.read + latency, as the
    core's getData fast path calls them), over the same loop without them; each path a fresh string
    as the decoder makes it; best of `rounds`. `namespaces` > 1 cycles the reads through that many
    top namespaces (the worst case of NamespaceTable's last-row cache is a new namespace each read)."""
    from coord.core.requeststats import RequestStats
    raw = [f"/bench{j % namespaces}/c{j % 8:03d}n{j:07d}".encode() for j in range(8000)]
    reply = bytes(24) + b"x" * 100 + bytes(68)
    rs = RequestStats()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for i in range(calls):
            raw[i % 8000].decode()
        base = time.process_time() - t0
        t0 = time.process_time()
        for i in range(calls):
            rs.read(4, raw[i % 8000].decode(), reply)
            rs.latency(False, 0)
        best = min(best, time.process_time() - t0 - base)
    return max(best, 0.0) / calls * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=50_000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--depth", type=int, default=32)
    ap.add_argument("--data-size", type=int, default=100)
    ap.add_argument("--phases", default=",".join(PHASES),
                    help=f"comma-separated, of {', '.join(PHASES + EXTRA_PHASES)}")
    ap.add_argument("--preload", type=int, default=0, help="znodes created first (a large tree)")
    ap.add_argument("--profile", choices=PHASES + EXTRA_PHASES, default=None)
    ap.add_argument("--metrics-cost", type=int, default=0, metavar="ROUNDS",
                    help="rounds alternating the metrics' request accounting off and on; best of each")
    ap.add_argument("--icount", action="store_true",
                    help="with --metrics-cost: count instructions per op under callgrind (re-runs itself "
                         "under valgrind on the server interpreter) instead of CPU time")
    ap.add_argument("--accounting", action="store_true",
                    help="only the ns per read of the metrics' request accounting (RequestStats), alone")
    a = ap.parse_args()
    if a.accounting:
        for k in (1, 2, 1000):
            print(f"read + latency accounting, {k} namespace(s): {accounting_ns(namespaces=k):.1f} ns per read")
        return
    phases = tuple(p for p in a.phases.split(",") if p)
    bad = [p for p in phases if p not in PHASES + EXTRA_PHASES]
    if bad:
        ap.error(f"unknown phase(s) {', '.join(bad)}")
    if a.metrics_cost:
        if a.icount:
            _reexec_under_callgrind()
            metrics_cost(a.metrics_cost, a.ops, a.connections, a.depth, a.data_size,
                         clock=icount_clock(), unit="Ir/op", scale=1e-6, phases=phases)
        else:
            metrics_cost(a.metrics_cost, a.ops, a.connections, a.depth, a.data_size, phases=phases)
        return
    if a.icount:
        ap.error("--icount goes with --metrics-cost")
    run(a.ops, a.connections, a.depth, a.data_size, a.profile, phases=phases, preload=a.preload)


if __name__ == "__main__":
    main()

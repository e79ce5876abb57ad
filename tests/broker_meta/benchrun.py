"""Repeated `broker-meta bench` against real ZooKeeper 3.8 and coord in one run, with medians and
ratios (the table in docs/broker_meta.md):

    .venv/bin/python -m tests.broker_meta.benchrun --full --repeats 3 \
        --targets zookeeper,coord,coord-ensemble --out /tmp/bm-bench.jsonl

Each target gets a fresh server (standalone: forceSync=no, tickTime 2000; ensembles: 3 servers from
one zoo.cfg, the same settings for both engines) that is started just before its measurement and
stopped after, so an idle server never competes with the measured one. The order of the targets
rotates between repeats. Per phase it also records the CPU seconds of the servers and of this (client)
process and how long the servers' threads waited, runnable, for a CPU (schedstat run-queue wait),
which tells a loaded machine's queueing from work. `--profile DIR` samples every coord server process with py-spy
during its measurement (a separate, unmeasured diagnostic: sampling costs a little CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from broker_meta.bench import BenchConfig, run_bench
from tests.support import real_zk
from tests.support.coord_server import CoordProcess
from tests.support.ensemble import Ensemble

METRICS = [("create topics: admin writes (s)", "create_admin_s"),
           ("create topics: until every partition state exists (s)", "create_total_s"),
           ("controller failover until the successor is ready (s)", "failover_s"),
           ("  of which the successor's load (s)", "successor_load_s"),
           ("move leadership off the dead broker (s)", "leader_move_s")]
REFERENCE = {"coord": "zookeeper", "coord-ensemble": "zookeeper-ensemble"}


class Server:
    def __init__(self, kind: str, workdir: Path):
        self.kind = kind
        self.workdir = workdir
        self.handle = None

    def start(self) -> str:
        if self.kind == "zookeeper":
            self.handle = real_zk.RealZooKeeper(self.workdir, heap_mb=4096).start()
            return self.handle.connect_string
        if self.kind == "coord":
            self.handle = CoordProcess(self.workdir, extra_cfg={"maxSessionTimeout": "60000"}).start()
            return self.handle.connect_string
        engine = "zookeeper" if self.kind == "zookeeper-ensemble" else "coord"
        self.handle = Ensemble(self.workdir, 3, kind=engine, tick_ms=2000, init_limit=10, sync_limit=5,
                               force_sync=False, heap_mb=3072, log_level="warning").start(wait=180)
        return self.handle.connect_string()

    def pids(self) -> list[int]:
        if self.kind in ("zookeeper", "coord"):
            return [self.handle.proc.pid]
        return [m.proc.pid for m in self.handle.members.values() if m.proc is not None]

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()
            self.handle = None


PHASES = (("creating", "create"), ("controller failover", "failover"), ("killing broker", "move"))


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (all their threads), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def runqueue_wait_seconds(pids: list[int]) -> float:
    """Time the processes' live threads spent runnable but waiting for a CPU (/proc/<pid>/task/*/
    schedstat; an exited thread's share is lost, so only the servers' long-lived threads are measured)."""
    total = 0
    for pid in pids:
        for f in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(f.read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total / 1e9


class PhaseCpu:
    """CPU seconds of the servers and of this (client) process, and the servers' run-queue waits, per
    bench phase, cut at the bench's own log lines, which it writes just before each phase starts."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.marks: list[tuple[str, float, float, float]] = []

    def log(self, message: str) -> None:
        for needle, phase in PHASES:
            if needle in message:
                self.mark(phase)

    def mark(self, phase: str) -> None:
        self.marks.append((phase, cpu_seconds(self.pids), time.process_time(), runqueue_wait_seconds(self.pids)))

    def result(self) -> dict[str, float]:
        self.mark("end")
        out = {}
        for (phase, s0, c0, w0), (_, s1, c1, w1) in zip(self.marks, self.marks[1:]):
            out[f"{phase}_server_cpu_s"] = round(s1 - s0, 2)
            out[f"{phase}_client_cpu_s"] = round(c1 - c0, 2)
            out[f"{phase}_server_wait_s"] = round(w1 - w0, 2)
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="200,000 partitions over 100 brokers, 2,000 leaders moved")
    ap.add_argument("--partitions", type=int, default=4000)
    ap.add_argument("--brokers", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--targets", default="zookeeper,coord")
    ap.add_argument("--out", type=Path, default=Path("broker-meta-bench.jsonl"))
    ap.add_argument("--profile", type=Path, default=None, help="py-spy raw profiles of coord servers go here")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--profile-client", action="store_true", help="also sample this (client) process with py-spy")
    args = ap.parse_args()
    cfg = BenchConfig.full_scale() if args.full else BenchConfig(brokers=args.brokers, partitions=args.partitions)
    targets = args.targets.split(",")
    base = args.workdir or Path(tempfile.mkdtemp(prefix="bm-bench-"))
    results: list[dict] = []
    for rep in range(args.repeats):
        order = targets[rep % len(targets):] + targets[:rep % len(targets)]
        for kind in order:
            wd = base / f"r{rep}-{kind}"
            server = Server(kind, wd)
            spies = []
            try:
                connect = server.start()
                if args.profile is not None:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    sampled = list(enumerate(server.pids())) if kind.startswith("coord") else []
                    if args.profile_client:
                        sampled.append(("client", os.getpid()))
                    for i, pid in sampled:
                        out = args.profile / f"r{rep}-{kind}-{i}.txt"
                        spies.append(subprocess.Popen(
                            [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "--rate", "50",
                             "--nonblocking", "--format", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                t0 = time.monotonic()
                cpu = PhaseCpu(server.pids())

                def log(m: str) -> None:
                    cpu.log(m)
                    print(f"  [{kind} r{rep}] {m}", flush=True)
                r = run_bench(connect, cfg, log=log, cleanup=False)  # the server and its data are discarded
                row = {"repeat": rep, "kind": kind, "wall_s": round(time.monotonic() - t0, 1),
                       "started": time.strftime("%H:%M:%S"), **asdict(r), **cpu.result()}
                try:
                    row["load_avg"] = open("/proc/loadavg").read().split()[:3]
                except OSError:
                    pass
                results.append(row)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
            except Exception as e:  # one failed measurement does not end the run
                print(f"  [{kind} r{rep}] FAILED: {e!r}", flush=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps({"repeat": rep, "kind": kind, "error": repr(e)}) + "\n")
            finally:
                for s in spies:
                    s.send_signal(signal.SIGINT)
                    try:
                        s.wait(60)
                    except subprocess.TimeoutExpired:
                        s.kill()
                server.stop()
                shutil.rmtree(wd, ignore_errors=True)
    print(summary(results))


def summary(results: list[dict]) -> str:
    results = [r for r in results if "error" not in r]
    kinds = [k for k in dict.fromkeys(r["kind"] for r in results)]
    n = {k: sum(1 for r in results if r["kind"] == k) for k in kinds}
    head = ["metric"] + [f"{k} (median of {n[k]})" for k in kinds]
    ratios = [(k, "zookeeper") for k in kinds if k.startswith("coord") and "zookeeper" in kinds]
    ratios += [(k, REFERENCE[k]) for k in kinds if REFERENCE.get(k) in kinds and REFERENCE[k] != "zookeeper"]
    head += [f"{a} / {b}" for a, b in ratios]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    metrics = METRICS + [(f"server CPU, {p} phase (s)", f"{p}_server_cpu_s") for _, p in PHASES] \
        + [(f"client CPU, {p} phase (s)", f"{p}_client_cpu_s") for _, p in PHASES] \
        + [(f"server run-queue wait, {p} phase (s)", f"{p}_server_wait_s") for _, p in PHASES]
    metrics = [(label, a) for label, a in metrics if all(a in r for r in results)]
    med = {k: {a: statistics.median([r[a] for r in results if r["kind"] == k]) for _, a in metrics} for k in kinds}
    for label, a in metrics:
        cells = [label] + [f"{med[k][a]:.2f}" for k in kinds]
        cells += [f"{med[x][a] / med[y][a]:.2f}" if med[y][a] else "" for x, y in ratios]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--summary":  # summarise an existing results file
        print(summary([json.loads(line) for line in open(sys.argv[2]) if line.strip()]))
    else:
        main()

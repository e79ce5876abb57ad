"""The failover phases of a kept bench run, from Kafka's own controller log lines:
`.venv/bin/python -m tests.kafka.failover_phases DIR` (DIR: `bench_kafka --keep DIR`).

Per trial folder (coord-* / zookeeper-*), the phases of the last controller election (the controller
failover) and of the broker failover the controller before it handled, in seconds; for coord also the
servers' event-loop stalls in the controller-failover window by cause (coord.stalls: "preempted" is
the OS running something else, "jit"/"gc-*" the server's own pauses), so a slow phase can be told
apart as the ensemble's own time or the machine's.
"""
from __future__ import annotations

import re
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from tests.kafka import zkwire

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] ")
SERVER_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
STALL = re.compile(r"coord\.stalls: stall ([\d.]+) ms: ([\w-]+)")

# (label, the log line that ends the phase); each phase starts where the one before ended.
CONTROLLER_PHASES = [
    ("elected", "successfully elected as the controller"),
    ("context loaded: topics, a watch per topic, assignments, partition states", "Currently active brokers"),
    ("online replicas, first LeaderAndIsr", "Triggering offline replica state changes"),
    ("dead brokers' replicas out of the ISRs (batched multi)", "Initializing partition state"),
    ("leader elections for offline partitions (batched multi)", "Ready to serve as the new controller"),
]


def _t(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _lines(path: Path):
    with open(path, errors="replace") as f:
        for line in f:
            m = STAMP.match(line)
            if m:
                yield _t(m.group(1)), line


def controller_failover(trial: Path) -> tuple[dict[str, float], tuple[float, float]] | None:
    """Phase -> seconds for the broker that became controller last (epoch 2 or later)."""
    best = None          # (time, lines, index) of the latest election
    for log in sorted(trial.glob("kafka/broker*/logs/server.log")):
        lines = list(_lines(log))
        starts = [i for i, (_, l) in enumerate(lines)
                  if CONTROLLER_PHASES[0][1] in l and "Epoch incremented to 1 " not in l]
        if starts and (best is None or lines[starts[-1]][0] > best[0]):
            best = (lines[starts[-1]][0], lines, starts[-1])
    if best is None:
        return None
    _, lines, i = best
    out, t_prev = {}, lines[i][0]
    t_first = t_prev
    for label, needle in CONTROLLER_PHASES[1:]:
        j = next((k for k in range(i, len(lines)) if needle in lines[k][1]), None)
        if j is None:
            break
        out[label] = lines[j][0] - t_prev
        WINDOWS[(trial, label)] = (t_prev, lines[j][0])
        t_prev, i = lines[j][0], j
    return out, (t_first, t_prev)


WINDOWS: dict[tuple[Path, str], tuple[float, float]] = {}   # (trial, phase) -> its start and end (epoch s)


def stalls(trial: Path, window: tuple[float, float]) -> dict[str, float]:
    """coord's stall milliseconds by headline cause in the window, summed over the servers."""
    out: dict[str, float] = defaultdict(float)
    for log in trial.glob("ensemble/s*/server.log"):
        with open(log, errors="replace") as f:
            for line in f:
                m = SERVER_STAMP.match(line)
                if not m or "coord.stalls" not in line:
                    continue
                if window[0] <= _t(m.group(1)) <= window[1]:
                    s = STALL.search(line)
                    if s:
                        out[s.group(2)] += float(s.group(1))
    return dict(out)


def main() -> None:
    root = Path(sys.argv[1])
    for trial in sorted(root.glob("*-*")):
        r = controller_failover(trial)
        if r is None:
            print(f"{trial.name}: no controller failover in the logs")
            continue
        phases, window = r
        print(f"{trial.name}: controller failover, elected to ready {window[1] - window[0]:.2f} s")
        for label, s in phases.items():
            print(f"  {s:7.2f}  {label}")
        if (trial / "failover.pcap").exists():   # bench_kafka --pcap: the brokers' requests per phase
            ports = {int(p) for p in (trial / "client_ports").read_text().split(",")}
            reqs, _ = zkwire.requests(trial / "failover.pcap", ports)
            for label in phases:
                t0, t1 = WINDOWS[(trial, label)]
                print(f"  ZooKeeper requests in '{label}':")
                print("    " + "\n    ".join(zkwire.summary(reqs, t0, t1)))
        if trial.name.startswith("coord"):
            st = stalls(trial, window)
            print("  coord stalls in that window (ms, all servers): "
                  + (", ".join(f"{k} {v:.0f}" for k, v in sorted(st.items(), key=lambda kv: -kv[1])) or "none"))


if __name__ == "__main__":
    main()

"""Kafka-level comparison, coord vs ZooKeeper 3.8 in the same run (3 servers, 3 real brokers each):
`.venv/bin/python -m tests.kafka.bench_kafka [--topics 50] [--trials 3]`. Per trial, a fresh cluster:

- create: N topics x 10 partitions x RF 3 through the AdminClient until every partition has a leader;
- leader kill: the longest gap between acks of an acks=all producer when the ensemble leader is killed
  (-9), and how many broker sessions were lost (broker epochs that changed);
- controller kill: kill -9 of the controller broker until a new controller has moved every partition
  it led (bounded below by the brokers' zookeeper.session.timeout.ms, 10 s here, on both).

Prints medians and the coord/ZooKeeper ratio of each."""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from tests.kafka.conftest import SESSION_TIMEOUT_MS, kafka_cluster_on
from tests.kafka.load import under_load
from tests.kafka.test_faults import create_topic


def create_many(env, n: int) -> float:
    admin = AdminClient({"bootstrap.servers": env.bootstrap})
    names = [f"bench-{i}" for i in range(n)]
    t0 = time.monotonic()
    for f in admin.create_topics([NewTopic(t, 10, 3) for t in names], operation_timeout=120).values():
        f.result(180)
    while True:
        md = admin.list_topics(timeout=30).topics
        if all(t in md and len(md[t].partitions) == 10 and all(p.leader >= 0 for p in md[t].partitions.values())
               for t in names):
            return time.monotonic() - t0
        time.sleep(0.1)


def leader_kill(env) -> tuple[float, int]:
    c = env.cluster
    with under_load(env.bootstrap, create_topic(env)) as load:
        before = c.broker_epochs()
        env.ensemble.leader().kill()
        env.ensemble.wait_serving(wait=60)
        time.sleep(SESSION_TIMEOUT_MS / 1000 + 2)
        load.still_flowing()
        lost = sum(1 for i, e in c.broker_epochs().items() if before.get(i) != e) + len(set(before) - set(c.registered()))
    load.check()
    return load.max_ack_gap(), lost


def controller_kill(env) -> float:
    c = env.cluster
    topic = create_topic(env)
    old = c.controller()
    led = [p for p in range(3) if c.partition_state(topic, p)["leader"] == old]
    c.brokers[old].kill()
    t0 = time.monotonic()
    c.wait_for(lambda: c.controller() not in (None, old)
               and all(c.partition_state(topic, p)["leader"] not in (old, -1) for p in led), 120, interval=0.05,
               describe="new controller, partitions moved")
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topics", type=int, default=50)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    rows: dict[str, dict[str, list[float]]] = {}
    for trial in range(args.trials):
        for backend in ("coord", "zookeeper"):
            with tempfile.TemporaryDirectory(prefix=f"bench-kafka-{backend}-") as d:
                with kafka_cluster_on(backend, Path(d), security=False) as env:
                    r = rows.setdefault(backend, {})
                    r.setdefault("create_s", []).append(create_many(env, args.topics))
                    gap, lost = leader_kill(env)
                    r.setdefault("leader_kill_gap_s", []).append(gap)
                    r.setdefault("sessions_lost", []).append(lost)
                    r.setdefault("controller_kill_s", []).append(controller_kill(env))
            print(f"trial {trial + 1} {backend}: " + ", ".join(f"{k}={v[-1]:.2f}" for k, v in rows[backend].items()),
                  flush=True)
    print(f"\nmedians of {args.trials} trials ({args.topics} topics x 10 partitions x RF 3)")
    print(f"{'metric':22} {'coord':>10} {'zookeeper':>10} {'ratio':>7}")
    for k in rows["coord"]:
        a, b = statistics.median(rows["coord"][k]), statistics.median(rows["zookeeper"][k])
        print(f"{k:22} {a:10.2f} {b:10.2f} {a / b if b else float('nan'):7.2f}")


if __name__ == "__main__":
    main()

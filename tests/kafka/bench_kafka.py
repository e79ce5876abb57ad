"""Kafka-level comparison, coord vs ZooKeeper 3.8 in the same run (3 servers, 3 real brokers each):
`.venv/bin/python -m tests.kafka.bench_kafka [--topics 200] [--trials 3]`. Per trial, a fresh cluster
per backend, then in order:

- create: N topics x 10 partitions x RF 3 through the AdminClient until every partition has a leader;
- leader kill: the longest gap between acks of an acks=all producer in the 5 s from a kill -9 of the
  ensemble leader (and, as the machine's noise, in the 5 s before it), and how many broker sessions
  were lost (broker epochs that changed);
- broker failover: kill -9 of the non-controller broker leading the most partitions (~1/3) until every
  one of them has a new leader in the brokers' metadata; then, until the controller has taken it out of
  every ISR (so that the controller failover starts from the same state on both backends);
- controller failover: kill -9 of the controller broker until a new controller has given every
  partition it led a new leader.

Both failovers start with the dead broker's ZooKeeper session running out (zookeeper.session.timeout.ms,
10 s here, the same wait on both backends), so each is also split at the moment the ensemble dropped
the registration (broker) or a new controller was elected: what follows is the controller reading and
writing partition state, the part the ensemble's speed shows in. Each failover also reports the
ensemble's CPU seconds and its threads' wait for a CPU. Prints min/median/max and the coord/ZooKeeper
ratio of the medians."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from tests.broker_meta.benchrun import cpu_seconds, runqueue_wait_seconds
from tests.kafka.conftest import SESSION_TIMEOUT_MS, kafka_cluster_on
from tests.kafka.load import under_load
from tests.kafka.test_faults import create_topic
from tests.kafka.zkwire import capture


class Usage:
    """CPU seconds the ensemble's servers used during one phase, and how long their threads waited
    for a CPU (run queue): on 2 shared cores a server that waits is slow though it does no more work."""

    def __init__(self, env):
        self.pids = [m.proc.pid for m in env.ensemble.members.values() if m.alive]
        self.cpu0, self.wait0 = cpu_seconds(self.pids), runqueue_wait_seconds(self.pids)

    def done(self, r: dict, prefix: str) -> None:
        r[f"{prefix}_server_cpu_s"] = cpu_seconds(self.pids) - self.cpu0
        r[f"{prefix}_server_runq_s"] = runqueue_wait_seconds(self.pids) - self.wait0


def leaders(admin: AdminClient, names: list[str]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> leader (-1: none) in the brokers' metadata."""
    md = admin.list_topics(timeout=30).topics
    return {(t, p): (md[t].partitions[p].leader if t in md and p in md[t].partitions else -1)
            for t in names for p in range(10)}


def controller_known(admin: AdminClient, wait: float = 120.0) -> tuple[int, float]:
    """Until the brokers' metadata names a controller: (the controller id the first answer gave, -1
    for none; seconds waited). librdkafka sends CreateTopics to the controller only, and when its
    metadata names none it waits for its next periodic refresh (topic.metadata.refresh.interval.ms,
    5 min): a cluster just started, whose brokers have not yet had the controller's UpdateMetadata,
    answers controller -1, and create_topics then hangs silently (no request reaches a broker)."""
    t0 = time.monotonic()
    first = None
    while True:
        cid = admin.list_topics(timeout=30).controller_id
        first = cid if first is None else first
        if cid >= 0 or time.monotonic() - t0 > wait:
            return first, time.monotonic() - t0
        time.sleep(0.2)


def create_many(env, admin: AdminClient, n: int) -> tuple[float, list[str]]:
    names = [f"bench-{i}" for i in range(n)]
    first, waited = controller_known(admin)
    print(f"  ({env.backend}: the first metadata named controller {first}; named one after {waited:.2f} s)",
          flush=True)
    t0 = time.monotonic()
    # The broker answers CreateTopics once the controller has written them all (operation_timeout):
    # longer than librdkafka's default 60 s socket timeout on a loaded machine.
    futures = admin.create_topics([NewTopic(t, 10, 3) for t in names], operation_timeout=280, request_timeout=300)
    for f in futures.values():
        f.result(600)
    while not all(lead >= 0 for lead in leaders(admin, names).values()):
        time.sleep(0.1)
    return time.monotonic() - t0, names


GAP_WINDOW_S = 5.0   # the ack gap a kill causes: the longest gap in the 5 s from the kill; the longest in
                    # the 5 s before it is the same load's gap without a fault (the machine's noise)


def leader_kill(env) -> tuple[float, float, int]:
    """(longest ack gap in the window from the kill, the same before the kill, broker sessions lost)."""
    c = env.cluster
    with under_load(env.bootstrap, create_topic(env)) as load:
        time.sleep(GAP_WINDOW_S + 1)
        before = c.broker_epochs()
        leader = env.ensemble.leader()
        t_kill = time.monotonic()
        leader.kill()
        env.ensemble.wait_serving(wait=60)
        time.sleep(SESSION_TIMEOUT_MS / 1000 + 2)
        load.still_flowing()
        lost = sum(1 for i, e in c.broker_epochs().items() if before.get(i) != e) + len(set(before) - set(c.registered()))
    load.check()
    env.ensemble.wait_serving(wait=60)
    return (load.max_ack_gap(t_kill, t_kill + GAP_WINDOW_S), load.max_ack_gap(t_kill - GAP_WINDOW_S, t_kill),
            lost)


def _moved(admin, names, dead: int, parts) -> bool:
    try:
        now = leaders(admin, names)
    except Exception:   # a metadata request that met the dead broker: ask again
        return False
    return all(now[tp] not in (dead, -1) for tp in parts)


def broker_failover(env, admin: AdminClient, names: list[str]) -> tuple[float, float, float, int, float]:
    """(kill to every led partition moved, kill to registration gone (the session's expiry), registration
    gone to moved, partitions moved, kill to the broker out of every ISR). The clock starts at the
    signal: a big JVM takes seconds to be torn down on a loaded machine, and its session runs out from
    the signal on."""
    c = env.cluster
    controller = c.controller()
    lead = leaders(admin, names)
    counts = Counter(l for l in lead.values() if l != controller)
    victim = counts.most_common(1)[0][0]
    parts = [tp for tp, l in lead.items() if l == victim]
    t0 = time.monotonic()
    c.brokers[victim].kill()
    gone = None
    while True:
        if gone is None and victim not in c.registered():
            gone = time.monotonic()
        if gone is not None and _moved(admin, names, victim, parts):
            done = time.monotonic()
            return done - t0, gone - t0, done - gone, len(parts), isr_settled(env, names, victim, t0)
        time.sleep(0.05)


def in_isrs(env, names: list[str], broker: int) -> int:
    """How many partitions still list broker in their ISR, as the controller wrote it in ZooKeeper."""
    zk, root = env.cluster.zk, env.cluster.chroot
    calls = [zk.get_async(f"{root}/brokers/topics/{t}/partitions/{p}/state") for t in names for p in range(10)]
    return sum(1 for c in calls if broker in json.loads(c.get(timeout=60)[0])["isr"])


def isr_settled(env, names: list[str], dead: int, t_kill: float) -> float:
    """Seconds from the kill until the controller has taken the dead broker out of every ISR. A broker
    failure is handled in two steps, elections for the partitions it led (what broker_failover waits
    for), then its removal from every other ISR: a controller killed between them leaves the rest to
    its successor, so the controller failover's work would depend on when the bench's poll landed."""
    while in_isrs(env, names, dead):
        time.sleep(0.2)
    return time.monotonic() - t_kill


def controller_kill(env, admin: AdminClient, names: list[str]) -> tuple[float, float, float]:
    """(kill to every partition it led moved, kill to a new controller elected, elected to moved)."""
    c = env.cluster
    old = c.controller()
    parts = [tp for tp, l in leaders(admin, names).items() if l == old]
    t0 = time.monotonic()
    c.brokers[old].kill()
    elected = None
    while True:
        if elected is None and c.controller() not in (None, old):
            elected = time.monotonic()
        if elected is not None and _moved(admin, names, old, parts):
            done = time.monotonic()
            return done - t0, elected - t0, done - elected
        time.sleep(0.05)


METRICS = {
    "create_s": "N topics x 10 partitions x RF 3 created until every partition has a leader (s)",
    "leader_kill_gap_s": "longest gap between acks (acks=all) in the 5 s from a kill -9 of the ensemble leader (s)",
    "gap_before_kill_s": "  the same in the 5 s before the kill: the machine's noise (s)",
    "sessions_lost": "broker sessions lost on that kill",
    "broker_failover_s": "kill -9 of the broker leading ~1/3 of the partitions until all have new leaders (s)",
    "broker_expiry_s": "  of which until the ensemble dropped its registration (session expiry, s)",
    "broker_failover_after_expiry_s": "  of which after that (s)",
    "broker_out_of_isrs_s": "  kill until the controller took the broker out of every ISR (s; only then the controller is killed)",
    "controller_failover_s": "kill -9 of the controller broker until every partition it led has a new leader (s)",
    "controller_elected_s": "  of which until a new controller was elected (s)",
    "controller_failover_after_election_s": "  of which after that (s)",
    "broker_failover_server_cpu_s": "ensemble CPU during the broker failover (s, all servers)",
    "broker_failover_server_runq_s": "  ensemble threads' wait for a CPU during it (s)",
    "controller_failover_server_cpu_s": "ensemble CPU during the controller failover (s, all servers)",
    "controller_failover_server_runq_s": "  ensemble threads' wait for a CPU during it (s)",
}


def trial(backend: str, topics: int, keep: Path | None = None, pcap: bool = False) -> dict[str, float]:
    """One trial on a fresh cluster; keep: leave its logs (servers', brokers') in a folder under keep;
    pcap: also a capture of the brokers' ZooKeeper traffic during the failovers there (failover.pcap,
    read by tests/kafka/zkwire.py and failover_phases)."""
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        return _trial(backend, topics, Path(tempfile.mkdtemp(prefix=f"{backend}-", dir=keep)), pcap)
    with tempfile.TemporaryDirectory(prefix=f"bench-kafka-{backend}-") as d:
        return _trial(backend, topics, Path(d))


def _captured(env, d: Path, pcap: bool):
    if not pcap:
        return contextlib.nullcontext()
    ports = [m.client_port for m in env.ensemble.members.values()]
    (d / "client_ports").write_text(",".join(map(str, ports)))
    return capture(ports, d / "failover.pcap")


def _trial(backend: str, topics: int, d: Path, pcap: bool = False) -> dict[str, float]:
    with kafka_cluster_on(backend, d, security=False) as env:
        admin = AdminClient({"bootstrap.servers": env.bootstrap, "socket.timeout.ms": 300000})
        r: dict[str, float] = {}
        r["create_s"], names = create_many(env, admin, topics)
        r["leader_kill_gap_s"], r["gap_before_kill_s"], r["sessions_lost"] = leader_kill(env)
        with _captured(env, d, pcap):
            u = Usage(env)
            (r["broker_failover_s"], r["broker_expiry_s"], r["broker_failover_after_expiry_s"],
             moved, r["broker_out_of_isrs_s"]) = broker_failover(env, admin, names)
            u.done(r, "broker_failover")
            u = Usage(env)
            (r["controller_failover_s"], r["controller_elected_s"],
             r["controller_failover_after_election_s"]) = controller_kill(env, admin, names)
            u.done(r, "controller_failover")
        print(f"  ({backend}: the failed-over broker led {moved} of {topics * 10} partitions)", flush=True)
        return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topics", type=int, default=200)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--backends", default="coord,zookeeper")
    ap.add_argument("--keep", type=Path, help="keep every trial's logs under this folder")
    ap.add_argument("--pcap", action="store_true", help="with --keep: capture the failovers' ZooKeeper traffic")
    args = ap.parse_args()
    backends = args.backends.split(",")
    rows: dict[str, dict[str, list[float]]] = {"coord": {}, "zookeeper": {}}
    failed: dict[str, int] = {b: 0 for b in backends}
    for n in range(args.trials):
        for backend in backends:
            try:
                r = trial(backend, args.topics, args.keep, args.pcap)
            except Exception as e:   # one trial lost (say CreateTopics timed out on a loaded box): say so, go on
                failed[backend] += 1
                print(f"trial {n + 1} {backend} FAILED (load average {os.getloadavg()[0]:.1f}): {e!r}", flush=True)
                continue
            for k, v in r.items():
                rows[backend].setdefault(k, []).append(v)
            print(f"trial {n + 1} {backend} (load average {os.getloadavg()[0]:.1f}): " + ", ".join(f"{k}={v[-1]:.2f}" for k, v in rows[backend].items()),
                  flush=True)
    print(f"\n{args.trials} trials ({', '.join(f'{b}: {k} failed' for b, k in failed.items())}), {args.topics} topics x 10 partitions x RF 3, session timeout "
          f"{SESSION_TIMEOUT_MS / 1000:g} s; min / median / max")
    print("| metric | coord | ZooKeeper 3.8 | ratio of medians |\n|---|---|---|---|")
    if backends != ["coord", "zookeeper"] or not rows["coord"] or not rows["zookeeper"]:
        return
    for k, label in METRICS.items():
        a, b = rows["coord"][k], rows["zookeeper"][k]
        ma, mb = statistics.median(a), statistics.median(b)
        fmt = lambda v: f"{min(v):.2f} / **{statistics.median(v):.2f}** / {max(v):.2f}"  # noqa: E731
        ratio = f"{ma / mb:.2f}" if mb else "-"
        print(f"| {label.replace('N topics', f'{args.topics} topics')} | {fmt(a)} | {fmt(b)} | {ratio} |")


if __name__ == "__main__":
    main()

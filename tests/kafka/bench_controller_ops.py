"""Where a Kafka failover's time goes on the ensemble: the controller's own ZooKeeper calls, timed on
coord and ZooKeeper 3.8 (3-server ensembles as bench_kafka's) with the client Kafka embeds:
`.venv/bin/python -m tests.kafka.bench_controller_ops [--ops 2000] [--in-flight 10] [--plain]`.
Each server kind is measured through its leader and through a follower (tests/kafka/java/ControllerOps.java)."""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path

from coord.kafka.libs import classpath
from tests.kafka.conftest import TICK_MS
from tests.support.ensemble import Ensemble

SOURCE = Path(__file__).with_name("java") / "ControllerOps.java"


def run(hosts: str, ops: int, in_flight: int, plain: bool) -> str:
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)
    cmd = ["java", "-Xmx256m", "-Dlog4j.configuration=file:/dev/null", *(["-Dplain=1"] if plain else []),
           "-cp", classpath(), str(SOURCE), hosts, str(ops), str(in_flight)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=2000)
    ap.add_argument("--in-flight", type=int, default=10)
    ap.add_argument("--plain", action="store_true", help="plain setData instead of Kafka's multi(check, setData)")
    args = ap.parse_args()
    for kind in ("coord", "zookeeper"):
        with tempfile.TemporaryDirectory(prefix=f"controller-ops-{kind}-") as d:
            with Ensemble(Path(d), 3, kind=kind, tick_ms=TICK_MS, force_sync=False) as ens:
                leader = ens.members[ens.wait_serving()]
                for label, member in (("leader", leader), ("follower", ens.followers()[0])):
                    text = run(member.connect_string, args.ops, args.in_flight, args.plain)
                    print(f"{kind} via its {label}:\n  " + text.replace("\n", "\n  "), flush=True)


if __name__ == "__main__":
    main()

"""`coord kafka up` as a user runs it: ensemble + 3 brokers, a producer and a consumer, Ctrl-C stops
everything (slow: CI runs it with `./scripts/test -m slow tests/kafka`)."""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coord.ensemble import port_in_use

pytestmark = pytest.mark.slow
COORD = Path(sys.executable).with_name("coord")


def free_layout() -> tuple[int, int]:
    """A base client port whose quorum/election ports (+707, +1707) and 3 Kafka ports are all free."""
    for _ in range(200):
        base, kport = random.randrange(20000, 28000, 10), random.randrange(30000, 40000, 10)
        ports = [base + d + i for d in (0, 707, 1707) for i in range(3)] + [kport + i for i in range(3)]
        if not any(port_in_use(p) for p in ports):
            return base, kport
    raise RuntimeError("no free ports")


@pytest.mark.parametrize("backend", ["coord", pytest.param("zookeeper", marks=pytest.mark.realzk)])
def test_kafka_up_serves_a_producer_and_a_consumer_and_stops_on_ctrl_c(backend, tmp_path):
    base, kport = free_layout()
    args = [str(COORD), "kafka", "up", "--dir", str(tmp_path / "k"), "--base-port", str(base),
            "--kafka-port", str(kport)] + (["--zookeeper"] if backend == "zookeeper" else [])
    out = open(tmp_path / "out.log", "w+")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        text = ""
        while "BOOTSTRAP " not in text:
            assert proc.poll() is None and time.monotonic() < deadline, f"not ready:\n{text[-3000:]}"
            time.sleep(0.5)
            text = (tmp_path / "out.log").read_text()
        bootstrap = text.split("BOOTSTRAP ", 1)[1].split()[0]
        zk = text.split("ZKCONNECT ", 1)[1].split()[0]
        assert bootstrap == ",".join(f"127.0.0.1:{kport + i}" for i in range(3))
        assert zk == ",".join(f"127.0.0.1:{base + i}" for i in range(3)) + "/kafka"

        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: the handle must outlive the future
        admin.create_topics([NewTopic("demo", 3, 3)])["demo"].result(60)
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
        for i in range(30):
            p.produce("demo", str(i).encode())
        assert p.flush(60) == 0
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo", "auto.offset.reset": "earliest"})
        c.subscribe(["demo"])
        got, deadline = [], time.monotonic() + 60
        while len(got) < 30 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(int(m.value()))
        c.close()
        assert sorted(got) == list(range(30))

        proc.send_signal(signal.SIGINT)
        assert proc.wait(120) == 0 or "stopped" in (tmp_path / "out.log").read_text()
        text = (tmp_path / "out.log").read_text()
        assert "stopped" in text
        busy = [q for q in [base + i for i in range(3)] + [kport + i for i in range(3)] if port_in_use(q)]
        assert not busy, f"still listening after Ctrl-C: {busy}"
    finally:
        if proc.poll() is None:  # a failed test: the same clean stop as Ctrl-C (its servers and brokers
            proc.send_signal(signal.SIGTERM)  # run in their own sessions, out of reach of a kill here)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)
        out.close()

"""Kafka's VerifiableProducer and VerifiableConsumer (the tools Kafka's own system tests judge brokers
with) across faults: a kill -9 of the ensemble leader, then of the controller broker, while the
producer sends with acks=all. Every record the producer reports acknowledged is one the consumer
group reports consumed, at the same partition and offset; coord and ZooKeeper 3.8 alike."""
from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from coord.kafka import tools
from tests.kafka.test_faults import create_topic

pytestmark = pytest.mark.slow

MESSAGES = 4000
RATE = 200   # records/s: 20 s of producing, long enough for both faults


def events(path) -> list[dict]:
    """The tool's JSON lines so far (a last line still being written is left for later)."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def spawn(kafka, main_class: str, args: list, out_path) -> subprocess.Popen:
    with open(out_path, "w") as out:
        return subprocess.Popen(tools.tool_command(main_class, list(args), kafka.workdir), stdout=out,
                                stderr=subprocess.DEVNULL, start_new_session=True)


def test_verifiable_consumer_sees_every_acked_verifiable_producer_record(kafka, tmp_path):
    topic = create_topic(kafka)
    c = kafka.cluster
    prod_out, cons_out = tmp_path / "producer.jsonl", tmp_path / "consumer.jsonl"
    consumer = spawn(kafka, tools.VERIFIABLE_CONSUMER, [
        "--bootstrap-server", kafka.bootstrap, "--topic", topic, "--group-id", f"v-{uuid.uuid4().hex[:6]}",
        "--reset-policy", "earliest", "--verbose"], cons_out)
    producer = None
    try:
        c.wait_for(lambda: any(e["name"] == "partitions_assigned" for e in events(cons_out)), 120,
                   describe="the consumer's partitions assigned")
        producer = spawn(kafka, tools.VERIFIABLE_PRODUCER, [
            "--bootstrap-server", kafka.bootstrap, "--topic", topic, "--max-messages", MESSAGES,
            "--throughput", RATE, "--acks", -1], prod_out)
        acked = lambda: sum(e["name"] == "producer_send_success" for e in events(prod_out))  # noqa: E731
        c.wait_for(lambda: acked() >= 500, 120, describe="500 acks")
        kafka.ensemble.leader().kill()
        kafka.ensemble.wait_serving(wait=60)
        c.wait_for(lambda: acked() >= 1500, 120, describe="1500 acks after the ensemble leader's kill")
        controller = c.controller()
        c.brokers[controller].kill()
        c.wait_for(lambda: c.controller() not in (None, controller), 90, describe="a new controller")
        assert producer.wait(240) == 0
        produced = events(prod_out)
        sent = {(e["partition"], e["offset"]): e["value"] for e in produced if e["name"] == "producer_send_success"}
        errors = [e for e in produced if e["name"] == "producer_send_error"]
        summary = next(e for e in produced if e["name"] == "tool_data")
        assert summary["acked"] == len(sent) > 0 and summary["sent"] == MESSAGES, summary

        def missing():
            got = {(e["partition"], e["offset"]): e["value"] for e in events(cons_out) if e["name"] == "record_data"}
            return {k: v for k, v in sent.items() if got.get(k) != v}
        t0 = time.monotonic()
        while (left := missing()) and time.monotonic() - t0 < 120:
            time.sleep(1)
        assert not left, f"{len(left)} acked records never consumed, e.g. {sorted(left.items())[:5]}"
    finally:
        for p in (producer, consumer):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
    consumed = [e for e in events(cons_out) if e["name"] == "record_data"]
    print(f"{kafka.backend}: VerifiableProducer acked {len(sent)} of {MESSAGES} ({len(errors)} send errors) "
          f"across an ensemble-leader kill and a controller kill; VerifiableConsumer saw all of them "
          f"({len(consumed)} records consumed, {len(consumed) - len(sent)} redelivered); send errors: "
          f"{sorted({e.get('exception', '?') for e in errors})}")

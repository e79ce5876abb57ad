"""Kafka's own load tools from the same jars (kafka-producer-perf-test.sh, kafka-consumer-perf-test.sh)
against the brokers on coord and on ZooKeeper 3.8: every record ProducerPerformance sends with acks=all
is acknowledged, and ConsumerPerformance reads them all back."""
from __future__ import annotations

import re

from coord.kafka import tools
from tests.kafka.test_faults import create_topic

RECORDS = 10_000


def test_producer_and_consumer_performance(kafka):
    topic = create_topic(kafka)
    out = kafka.tool(tools.PRODUCER_PERF, "--topic", topic, "--num-records", RECORDS, "--record-size", 100,
                     "--throughput", -1, "--producer-props", f"bootstrap.servers={kafka.bootstrap}", "acks=all",
                     timeout=180).stdout
    # The final summary (progress lines before it have no percentiles): "10000 records sent, 5000.0
    # records/sec (0.48 MB/sec), 20.00 ms avg latency, 90.00 ms max latency, 15 ms 50th, ..."
    summary = re.search(r"^(\d+) records sent, ([\d.]+) records/sec .*?([\d.]+) ms avg latency, ([\d.]+) ms max "
                        r"latency, \d+ ms 50th", out, re.M)
    assert summary, out
    assert int(summary[1]) == RECORDS
    out = kafka.tool(tools.CONSUMER_PERF, "--bootstrap-server", kafka.bootstrap, "--topic", topic,
                     "--messages", RECORDS, "--timeout", 60000, "--hide-header", timeout=180).stdout
    # One CSV line: start, end, MB, MB/sec, messages, messages/sec, ...
    row = [f.strip() for f in out.strip().splitlines()[-1].split(",")]
    assert int(row[4]) == RECORDS, out
    print(f"{kafka.backend}: ProducerPerformance {summary[1]} records at {summary[2]} records/s, "
          f"{summary[3]} ms avg / {summary[4]} ms max latency; ConsumerPerformance read {row[4]} "
          f"({row[5]} records/s)")

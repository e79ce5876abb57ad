"""Scenario 2: idempotent acks=all producers and group consumers, with confluent-kafka and aiokafka;
offsets committed by one consumer are where its successor in the group resumes."""
from __future__ import annotations

import asyncio
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from coord.kafka import tools

N = 300
FIRST = 120   # consumed and committed by the first consumer; the rest by its successor


def create_topic(kafka, partitions: int = 3) -> str:
    topic = f"pc-{uuid.uuid4().hex[:8]}"
    kafka.tool(tools.TOPICS, "--bootstrap-server", kafka.bootstrap, "--create", "--topic", topic,
               "--partitions", str(partitions), "--replication-factor", "3")
    return topic


def check_split(first: list[tuple[int, int, bytes]], second: list[tuple[int, int, bytes]]) -> None:
    """Together the two consumers saw every message exactly once; each partition in offset order."""
    values = sorted(int(v) for _, _, v in first + second)
    assert values == list(range(N)), f"{len(values)} values, duplicates or gaps"
    for part in {p for p, _, _ in first + second}:
        offsets = [o for p, o, _ in first + second if p == part]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), f"partition {part}"


def test_confluent_kafka_idempotent_produce_and_group_resume(kafka):
    topic = create_topic(kafka)
    group = f"g-{topic}"
    p = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all", "enable.idempotence": True})
    errors = []
    for i in range(N):
        p.produce(topic, str(i).encode(), key=str(i % 7).encode(),
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.poll(0)
    assert p.flush(60) == 0 and not errors, errors

    def consumer() -> Consumer:
        c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group, "enable.auto.commit": False,
                      "auto.offset.reset": "earliest"})
        c.subscribe([topic])
        return c

    def take(c: Consumer, n: int) -> list[tuple[int, int, bytes]]:
        got, deadline = [], time.monotonic() + 90
        while len(got) < n and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append((m.partition(), m.offset(), m.value()))
        assert len(got) == n, f"consumed {len(got)} of {n}"
        return got

    c1 = consumer()
    first = take(c1, FIRST)
    last = {}
    for part, off, _ in first:
        last[part] = max(off, last.get(part, -1))
    c1.commit(offsets=[TopicPartition(topic, part, off + 1) for part, off in last.items()], asynchronous=False)
    c1.close()

    c2 = consumer()
    second = take(c2, N - FIRST)
    extra = c2.poll(3.0)
    assert extra is None or extra.error(), "a message beyond the N produced"
    c2.commit(asynchronous=False)
    # Committed = end of log on every partition that holds messages (an empty one has none: -1001).
    committed = c2.committed([TopicPartition(topic, part) for part in range(3)], timeout=30)
    for tp in committed:
        high = c2.get_watermark_offsets(tp, timeout=30)[1]
        assert tp.offset == high or (high == 0 and tp.offset < 0), (tp, high)
    c2.close()
    check_split(first, second)


def test_aiokafka_idempotent_produce_and_group_resume(kafka):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as TP
    topic = create_topic(kafka)
    group = f"g-{topic}"

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            futures = [await producer.send(topic, str(i).encode(), key=str(i % 7).encode()) for i in range(N)]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

        async def take(n: int, commit: bool):
            c = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, group_id=group,
                                 enable_auto_commit=False, auto_offset_reset="earliest")
            await c.start()
            got = []
            try:
                while len(got) < n:
                    m = await asyncio.wait_for(c.getone(), 60)
                    got.append((m.partition, m.offset, m.value))
                if commit:
                    last = {}
                    for part, off, _ in got:
                        last[part] = max(off, last.get(part, -1))
                    await c.commit({TP(topic, part): off + 1 for part, off in last.items()})
                else:
                    await c.commit()
                    committed = [await c.committed(TP(topic, part)) for part in range(3)]
                    ends = await c.end_offsets([TP(topic, part) for part in range(3)])
                    assert committed == [ends[TP(topic, part)] or None for part in range(3)], (committed, ends)
            finally:
                await c.stop()
            return got

        first = await take(FIRST, commit=True)
        second = await take(N - FIRST, commit=False)
        return first, second

    first, second = asyncio.run(run())
    check_split(first, second)

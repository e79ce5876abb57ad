"""Continuous produce/consume with confluent-kafka, and the check that nothing acknowledged was lost.

The producer is idempotent with acks=all and writes a sequence number to partition seq % partitions;
the consumer is assigned every partition (no group: a rebalance would legitimately re-deliver) and
reads from the start. The check: per partition, what was consumed has increasing offsets, no value
twice, and holds every acknowledged (offset, value) pair; so every acked message was consumed exactly
once, in order.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from contextlib import contextmanager

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition


class _Remember(logging.Logger):
    """librdkafka's warnings and its idempotence (eos) debug lines (a PID acquired, a partition drained,
    an epoch bumped: what lets a retried batch be written twice), kept in a list (the last 300)."""

    WORDS = ("pid", "epoch", "drain", "idempot", "sequence")

    def __init__(self, into: list[str]):
        super().__init__("load-producer", logging.DEBUG)
        self.into = into

    def handle(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if record.levelno >= logging.WARNING or any(w in line.lower() for w in self.WORDS):
            self.into.append(f"{time.strftime('%H:%M:%S')} {line}")
            del self.into[:-300]


class ContinuousLoad:
    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: float = 100.0):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.interval = 1.0 / rate
        self.acked: dict[int, list[tuple[int, int]]] = defaultdict(list)    # partition -> (offset, seq)
        self.ack_times: list[float] = []
        self.failed: list[str] = []
        self.producer_log: list[str] = []     # librdkafka's warnings: an idempotence epoch bump shows here
        self.consumed: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.consume_errors: list[str] = []
        self._stop_producing = threading.Event()
        self._stop_consuming = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sent = 0

    def _on_delivery(self, err, msg) -> None:
        if err is not None:
            self.failed.append(str(err))
        else:
            # offset None: librdkafka can report a delivery without its offset (seen once, in a ZooKeeper
            # run of the migration test under a rolling restart; a retried batch that the broker says it
            # already has is answered without one): check() then looks for the value, not the offset
            self.acked[msg.partition()].append((msg.offset(), int(msg.value())))
            self.ack_times.append(time.monotonic())

    def _produce(self) -> None:
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "delivery.timeout.ms": 120000, "debug": "eos", "log_level": 7},
                     logger=_Remember(self.producer_log))
        seq = 0
        while not self._stop_producing.is_set():
            p.produce(self.topic, str(seq).encode(), partition=seq % self.partitions,
                      on_delivery=self._on_delivery)
            seq += 1
            self.sent = seq
            p.poll(self.interval)
        left = p.flush(150)
        if left:
            self.failed.append(f"{left} messages still unacknowledged after flush")

    def _consume(self) -> None:
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"load-{self.topic}",
                      "enable.auto.commit": False, "log_level": 2})
        c.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)])
        try:
            while not self._stop_consuming.is_set():
                m = c.poll(0.2)
                if m is None:
                    continue
                if m.error():
                    self.consume_errors.append(f"{time.strftime('%H:%M:%S')} {m.error()}")
                    continue
                self.consumed[m.partition()].append((m.offset(), int(m.value())))
        finally:
            c.close()

    def start(self) -> "ContinuousLoad":
        for target in (self._consume, self._produce):
            t = threading.Thread(target=target, daemon=True, name=f"{target.__name__}-{self.topic}")
            t.start()
            self._threads.append(t)
        return self

    def acked_count(self) -> int:
        return sum(len(v) for v in self.acked.values())

    def wait_acked(self, more_than: int, wait: float = 60.0) -> None:
        deadline = time.monotonic() + wait
        while self.acked_count() <= more_than:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no acks past {more_than} in {wait}s (failed: {self.failed[-3:]})")
            time.sleep(0.1)

    def still_flowing(self, more: int = 50, wait: float = 60.0) -> None:
        """Until `more` acks beyond those so far: the producer got through the fault."""
        self.wait_acked(self.acked_count() + more - 1, wait)

    def stop(self, wait: float = 90.0) -> None:
        """Stop producing, wait for every ack, then until the consumer has caught up with them."""
        self._stop_producing.set()
        self._threads[1].join(180)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not self._caught_up():
            time.sleep(0.2)
        self._stop_consuming.set()
        self._threads[0].join(30)

    def _caught_up(self) -> bool:
        for p, acks in self.acked.items():
            last = max((o for o, _ in acks if o is not None), default=-1)
            if last >= 0 and (not self.consumed[p] or self.consumed[p][-1][0] < last):
                return False
        return True

    def max_ack_gap(self, start: float | None = None, end: float | None = None) -> float:
        """The longest time without an acknowledgement (the produce outage a fault caused); with start
        and end (time.monotonic()), only the gaps that end after start and begin before end: a fault's
        own outage, apart from the stalls a loaded machine gives at any moment."""
        t = sorted(self.ack_times)
        return max((b - a for a, b in zip(t, t[1:])
                    if (start is None or b > start) and (end is None or a < end)), default=0.0)

    def check(self) -> int:
        """Assert exactly-once, in-order consumption of every acked message; the number checked. A message
        acked without an offset (see _on_delivery) must have been consumed once, at whatever offset."""
        assert self.acked_count() > 0, "nothing was acknowledged"
        for p in range(self.partitions):
            got = self.consumed[p]
            offsets = [o for o, _ in got]
            assert offsets == sorted(set(offsets)), f"partition {p}: offsets not strictly increasing"
            values = [v for _, v in got]
            assert len(values) == len(set(values)), f"partition {p}: {self.duplicates(p)}"
            seen = dict(got)
            missing = [(o, v) for o, v in self.acked[p] if o is not None and seen.get(o) != v]
            assert not missing, (f"partition {p}: {len(missing)} acked messages not consumed, e.g. {missing[:5]}; "
                                 f"the load's consumer last read {got[-1][0] if got else None}, its errors "
                                 f"{self.consume_errors[-3:]}; " + self.read_back(p, missing))
            consumed_values = set(values)
            unplaced = [v for o, v in self.acked[p] if o is None and v not in consumed_values]
            assert not unplaced, (f"partition {p}: {len(unplaced)} messages acked without an offset are not in "
                                  f"what was consumed, e.g. {unplaced[:5]}")
            assert all(v % self.partitions == p for v in values), f"partition {p}: a foreign value"
        return self.acked_count()

    def duplicates(self, partition: int) -> str:
        """Values the log holds at more than one offset (an idempotent producer's retry written twice),
        with their offsets, which of those were acked, and the consumer's errors."""
        at: dict[int, list[int]] = defaultdict(list)
        for o, v in self.consumed[partition]:
            at[v].append(o)
        twice = {v: os for v, os in at.items() if len(os) > 1}
        acked = dict(self.acked[partition])
        shown = [(v, os, [o for o in os if acked.get(o) == v]) for v, os in sorted(twice.items())[:5]]
        return (f"{len(twice)} values consumed twice (value, offsets, acked offsets): {shown}; "
                f"producer errors {self.failed[-3:]}; consumer errors {self.consume_errors[-3:]}; producer warnings "
                f"{[w for w in self.producer_log if any(k in w.lower() for k in _Remember.WORDS)][-8:]}")

    def read_back(self, partition: int, missing: list[tuple[int, int]], wait: float = 60.0) -> str:
        """Whether acked messages the load's consumer did not see are in the log: a fresh consumer reads
        them. All there: the consumer stalled (a harness matter). Absent or other values: they were lost."""
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"read-back-{self.topic}",
                      "enable.auto.commit": False, "auto.offset.reset": "error", "log_level": 2})
        want = dict(missing)
        got: dict[int, int] = {}
        errors: list[str] = []
        try:
            low, high = c.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=20)
            c.assign([TopicPartition(self.topic, partition, min(want))])
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and max(got, default=-1) < min(max(want), high - 1):
                m = c.poll(0.5)
                if m is None:
                    continue
                if m.error():
                    errors.append(str(m.error()))
                    continue
                got[m.offset()] = int(m.value())
        finally:
            c.close()
        there = sum(got.get(o) == v for o, v in want.items())
        other = sum(o in got and got[o] != v for o, v in want.items())
        return (f"read back: {there} of {len(want)} in the log, {other} with other values, "
                f"{len(want) - there - other} absent (log offsets {low}..{high}){'; errors ' + str(errors[:3]) if errors else ''}"
                + ("" if there == len(want) else " -- ACKED MESSAGES LOST"))


@contextmanager
def under_load(bootstrap: str, topic: str, partitions: int = 3):
    """A ContinuousLoad for the with block, flowing (50 acks) on entry; on exit, failing or not, producing
    stops and the consumer catches up, so `check()` can follow."""
    load = ContinuousLoad(bootstrap, topic, partitions).start()
    try:
        load.wait_acked(50)
        yield load
    finally:
        load.stop()

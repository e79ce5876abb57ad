"""The no-loss check of tests/kafka/load.py can fail, and when it does it tells the two causes apart:
acked messages its consumer did not reach but which are in the log (a consumer stall, the harness's
matter) from acked messages the log does not hold (a loss, the cluster's)."""
from __future__ import annotations

import pytest

from tests.kafka.load import under_load
from tests.kafka.test_faults import create_topic


def test_the_check_tells_a_consumer_stall_from_a_loss(kafka):
    topic = create_topic(kafka)
    with under_load(kafka.bootstrap, topic) as load:
        load.still_flowing(60)
    assert load.check() > 0

    # The consumer "missed" ten messages of partition 0 that the log holds.
    dropped = load.consumed[0][-10:]
    del load.consumed[0][-10:]
    with pytest.raises(AssertionError) as stall:
        load.check()
    assert "10 acked messages not consumed" in str(stall.value)
    assert "read back: 10 of 10 in the log, 0 with other values, 0 absent" in str(stall.value)
    assert "LOST" not in str(stall.value)

    # An ack for an offset past the log's end: the log does not hold it.
    load.consumed[0].extend(dropped)
    end = max(o for o, _ in load.acked[0])
    load.acked[0].append((end + 1000, 0))
    with pytest.raises(AssertionError) as lost:
        load.check()
    assert "1 acked messages not consumed" in str(lost.value)
    assert "read back: 0 of 1 in the log, 0 with other values, 1 absent" in str(lost.value)
    assert "ACKED MESSAGES LOST" in str(lost.value)

    # A delivery reported without an offset is looked for by its value.
    load.acked[0].pop()
    load.acked[0].append((None, load.consumed[0][0][1]))
    assert load.check() > 0
    load.acked[0].append((None, 3 * 10**9))
    with pytest.raises(AssertionError) as unplaced:
        load.check()
    assert "1 messages acked without an offset are not in what was consumed" in str(unplaced.value)

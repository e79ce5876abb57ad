"""bench_multi_depth sends exactly Kafka's controller write: multi(check /controller_epoch, setData
the partition state), each at the version it names, under the xid it counts replies by."""
import struct

from coord.core.server import ServerCore
from coord.jute import records as R
from tests.kafka.bench_multi_depth import EPOCH, STATE, multi_frame, pct, state_path


def test_frame_is_kafkas_checked_partition_state_write():
    frame = multi_frame(42, state_path(7), 3)
    length, xid, op = struct.unpack_from(">iii", frame)
    assert (length, xid, op) == (len(frame) - 4, 42, 14)
    ops = ServerCore._decode_multi(frame[4:], 8)
    assert ops == [(13, R.CheckVersionRequest(EPOCH, 0)),
                   (5, R.SetDataRequest("/brokers/topics/t/partitions/7/state", STATE, 3))]


def test_percentiles_in_ms():
    ns = [i * 1_000_000 for i in range(1, 101)]
    assert pct(ns, 0.5) == 51.0 and pct(ns, 0.99) == 100.0 and pct(ns[::-1], 0.0) == 1.0

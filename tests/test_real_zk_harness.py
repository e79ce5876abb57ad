import pytest
from kazoo.client import KazooClient

pytestmark = pytest.mark.realzk


def test_real_zookeeper_serves_and_stops(real_zookeeper):
    assert real_zookeeper.mode() == "standalone"
    zk = KazooClient(hosts=real_zookeeper.connect_string)
    zk.start(timeout=20)
    try:
        zk.create("/harness", b"x")
        data, stat = zk.get("/harness")
        assert data == b"x" and stat.version == 0
    finally:
        zk.stop()

"""The standalone server answers a real kazoo client end to end (the fastest whole-stack check)."""
from kazoo.client import KazooClient

from tests.support.real_zk import four_letter


def test_kazoo_round_trip(coord_server):
    zk = KazooClient(hosts=coord_server.connect_string)
    zk.start(timeout=10)
    try:
        zk.create("/smoke", b"v")
        data, stat = zk.get("/smoke")
        assert data == b"v" and stat.version == 0 and stat.dataLength == 1
        assert zk.set("/smoke", b"w").version == 1
        assert zk.server_version()[:2] == (3, 8)
    finally:
        zk.stop()
    assert four_letter("127.0.0.1", coord_server.client_port, "ruok") == "imok"
    assert "Mode: standalone" in four_letter("127.0.0.1", coord_server.client_port, "srvr")

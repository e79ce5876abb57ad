"""Who may ask a coord observer to take over (coord.aio.zkobserver.takeover_allowed_from): loopback
or a host named in the ensemble's server lines, never any client of the client port."""
from coord.aio.zkobserver import takeover_allowed_from
from coord.aio.zoocfg import parse

CFG = parse("dataDir=/tmp/x\nserver.1=127.0.0.1:2888:3888;2181\nserver.2=10.1.2.3:2888:3888;2181\n"
            "server.4=10.1.2.4:2888:3888:observer;2181\ncoord.peerProtocol=zookeeper\n")


def test_loopback_and_ensemble_hosts_may():
    assert takeover_allowed_from("127.0.0.1", CFG)
    assert takeover_allowed_from("127.0.0.7", CFG)
    assert takeover_allowed_from("::1", CFG)
    assert takeover_allowed_from("10.1.2.3", CFG)
    assert takeover_allowed_from("10.1.2.4", CFG)


def test_other_clients_may_not():
    assert not takeover_allowed_from("10.9.9.9", CFG)
    assert not takeover_allowed_from("192.168.1.20", CFG)
    assert not takeover_allowed_from("not-an-ip", CFG)

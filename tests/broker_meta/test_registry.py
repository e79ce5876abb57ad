"""Broker registration (spec §3.2) against a real server."""
from __future__ import annotations

import json
import threading
import time

import pytest

from broker_meta import codec, paths
from broker_meta.errors import NodeExistsOwnerMismatch
from broker_meta.model import BrokerRegistration, EndPoint
from broker_meta.registry import BrokerRegistry, BrokerWatch, CheckedEphemeral, live_brokers

from .conftest import wait_until


def info(broker_id: int, port: int = 9092, rack: str | None = None) -> BrokerRegistration:
    return BrokerRegistration(broker_id, (EndPoint("PLAINTEXT", f"host{broker_id}", port, "PLAINTEXT"),),
                              int(time.time() * 1000), rack)


def test_registration_is_checked_ephemeral_with_czxid_epoch(zk_clients):
    zk = zk_clients.new()
    zk.make_sure_persistent_path_exists(paths.BROKER_IDS)
    epoch = BrokerRegistry(zk).register(info(1))
    data, stat = zk.get_data(paths.broker(1))
    assert stat.ephemeralOwner == zk.session_id
    assert stat.czxid == epoch == stat.mzxid  # create + setData in one multi: one zxid
    assert stat.version == 1  # created with null data at version 0, then set at version 0
    assert codec.decode_broker(1, data).endpoints[0].host == "host1"
    assert json.loads(data)["version"] == 5


def test_second_session_gets_node_exists(zk_clients):
    a, b = zk_clients.new(), zk_clients.new()
    a.make_sure_persistent_path_exists(paths.BROKER_IDS)
    BrokerRegistry(a).register(info(2))
    with pytest.raises(NodeExistsOwnerMismatch) as e:
        BrokerRegistry(b).register(info(2))
    assert e.value.owner == a.session_id and e.value.session == b.session_id


def test_same_session_retry_is_success(zk_clients):
    """Our multi landed but the reply was lost: the re-sent multi sees NODEEXISTS owned by us."""
    zk = zk_clients.new()
    zk.make_sure_persistent_path_exists(paths.BROKER_IDS)
    first = CheckedEphemeral(zk).create(paths.broker(3), codec.encode_broker(info(3)))
    again = CheckedEphemeral(zk).create(paths.broker(3), codec.encode_broker(info(3)))
    assert again.czxid == first.czxid


def test_leftover_of_our_previous_session_is_recreated(zk_clients):
    """ZOOKEEPER-2985 workaround: the node is owned by the session of our previous registration."""
    old, new = zk_clients.new(), zk_clients.new()
    old.make_sure_persistent_path_exists(paths.BROKER_IDS)
    ce = CheckedEphemeral(old)
    first = ce.create(paths.broker(4), codec.encode_broker(info(4)))
    ce.zk = new  # same registrar, new session; the old session's node is still there
    second = ce.create(paths.broker(4), codec.encode_broker(info(4)))
    assert second.czxid > first.czxid
    assert new.get_data(paths.broker(4))[1].ephemeralOwner == new.session_id
    assert ce.current_session_id == new.session_id


def test_update_keeps_node_ephemeral(zk_clients):
    zk = zk_clients.new()
    zk.make_sure_persistent_path_exists(paths.BROKER_IDS)
    reg = BrokerRegistry(zk)
    epoch = reg.register(info(5))
    reg.update(info(5, port=9999))
    data, stat = zk.get_data(paths.broker(5))
    assert stat.ephemeralOwner == zk.session_id and stat.czxid == epoch
    assert codec.decode_broker(5, data).endpoints[0].port == 9999


def test_reregistration_after_session_expiry(zk_clients):
    zk = zk_clients.new()
    zk.make_sure_persistent_path_exists(paths.BROKER_IDS)
    epochs = []
    reg = BrokerRegistry(zk, on_registered=epochs.append)
    first = reg.register(info(6))
    old_session = zk.session_id
    zk_clients.expire(zk)
    wait_until(lambda: len(epochs) == 2, what="re-registration")
    assert zk.session_id != old_session
    assert epochs[1] > first
    stat = zk.get_data(paths.broker(6))[1]
    assert stat.ephemeralOwner == zk.session_id and stat.czxid == epochs[1]


def test_live_brokers_and_watch(zk_clients):
    observer, a, b = zk_clients.new(), zk_clients.new(), zk_clients.new()
    seen: list[list[int]] = []
    cond = threading.Condition()

    def cb(brokers):
        with cond:
            seen.append([x.broker_id for x in brokers])
            cond.notify_all()

    watch = BrokerWatch(observer, cb)
    ea = BrokerRegistry(a).register(info(10))
    eb = BrokerRegistry(b).register(info(11, rack="r2"))
    wait_until(lambda: seen and seen[-1] == [10, 11], what="both brokers seen")
    lb = {x.broker_id: x for x in live_brokers(observer)}
    assert lb[10].broker_epoch == ea and lb[11].broker_epoch == eb and eb > ea
    assert lb[11].registration.rack == "r2"
    a.close()  # closeSession removes the ephemeral at once
    wait_until(lambda: seen[-1] == [11], what="broker 10 gone")
    watch.close()

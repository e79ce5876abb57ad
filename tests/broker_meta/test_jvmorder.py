"""JVM hash codes and map iteration orders behind Kafka's JSON key order."""
from __future__ import annotations

from broker_meta.jvmorder import (java_hashmap_order, java_properties_order, java_string_hash, scala_immutable_order,
                                  scala_mutable_order)


def test_string_hash_is_javas():
    assert java_string_hash("") == 0
    assert java_string_hash("a") == 97
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("Aa") == java_string_hash("BB") == 2112
    assert java_string_hash("polygenelubricants") == -(2 ** 31)  # the classic MIN_VALUE string
    assert java_string_hash("😀") == 31 * 0xD83D + 0xDE00  # UTF-16 code units, not code points


def test_small_scala_maps_keep_insertion_order():
    assert scala_immutable_order(["version", "brokerid", "timestamp", "kraftControllerEpoch"]) == \
        ["version", "brokerid", "timestamp", "kraftControllerEpoch"]
    assert scala_immutable_order(["b", "a", "b"]) == ["b", "a"]


def test_champ_order_for_five_keys_matches_real_partition_state():
    assert scala_immutable_order(["version", "leader", "leader_epoch", "controller_epoch", "isr"]) == \
        ["controller_epoch", "leader", "version", "leader_epoch", "isr"]


def test_mutable_hashmap_sizes_from_known_size_and_grows_before_insert():
    broker = ["version", "host", "port", "endpoints", "jmx_port", "timestamp", "listener_security_protocol_map", "features"]
    assert scala_mutable_order(broker, initial=6) == ["features", "listener_security_protocol_map", "endpoints",
                                                      "jmx_port", "port", "host", "version", "timestamp"]
    eleven = [str(i) for i in range(11)]
    assert scala_mutable_order(eleven)[0] == "0"  # 16 slots: "10" (1567 & 15 = 15) sorts last
    assert scala_mutable_order(eleven)[-1] == "10"
    assert scala_mutable_order(eleven + ["11"])[0] == "11"  # 12th insert doubles to 32 first


def test_java_hashmap_and_properties_orders_are_permutations_in_bucket_order():
    keys = [f"k{i}" for i in range(30)]
    for order in (java_hashmap_order(keys), java_properties_order(keys)):
        assert sorted(order) == sorted(keys)
    small = ["retention.ms", "cleanup.policy", "min.insync.replicas"]
    spread = {k: (java_string_hash(k) & 0xFFFFFFFF) ^ ((java_string_hash(k) & 0xFFFFFFFF) >> 16) for k in small}
    assert java_properties_order(small) == sorted(small, key=lambda k: spread[k] & 15)
    assert java_properties_order(small, removed=["cleanup.policy"]) == [k for k in java_properties_order(small)
                                                                        if k != "cleanup.policy"]

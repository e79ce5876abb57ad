"""Golden fixtures (spec §2.1 examples, real cluster dumps) and codec round trips."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker_meta import codec, jackson
from broker_meta.model import (BrokerRegistration, ClusterId, ControllerRegistration, EndPoint, EntityConfig,
                               PartitionState, ReplicaAssignment, SupportedVersionRange, TopicAssignment,
                               TopicPartition)

GOLDEN = Path(__file__).parent / "golden"
MANIFEST = json.loads((GOLDEN / "MANIFEST.json").read_text())

# kind -> (decode bytes -> model, encode model -> bytes)
KINDS = {
    "controller": (codec.decode_controller, codec.encode_controller),
    "controller_epoch": (codec.decode_controller_epoch, codec.encode_controller_epoch),
    "broker": (lambda b: codec.decode_broker(1, b), codec.encode_broker),
    "topic": (lambda b: codec.decode_topic("t1", b), codec.encode_topic),
    "partition_state": (codec.decode_partition_state, codec.encode_partition_state),
    "entity_config": (codec.decode_entity_config, codec.encode_entity_config),
    "config_change": (codec.decode_config_change, codec.encode_config_change),
    "isr_change": (codec.decode_isr_change, codec.encode_isr_change),
    "log_dir_event": (codec.decode_log_dir_event, codec.encode_log_dir_event),
    "preferred_replica_election": (codec.decode_preferred_replica_election, codec.encode_preferred_replica_election),
    "reassign_partitions": (codec.decode_reassignment, codec.encode_reassignment),
    "cluster_id": (codec.decode_cluster_id, codec.encode_cluster_id),
    "feature": (codec.decode_feature, codec.encode_feature),
    "producer_id_block": (codec.decode_producer_id_block, codec.encode_producer_id_block),
    "migration": (codec.decode_migration, codec.encode_migration),
    "acl": (codec.decode_acl_node, codec.encode_acl_node),
    "extended_acl_change": (codec.decode_extended_acl_change, codec.encode_extended_acl_change),
    "literal_acl_change": (codec.decode_literal_acl_change, codec.encode_literal_acl_change),
    "delegation_token": (codec.decode_delegation_token, codec.encode_delegation_token),
    "consumer_offset": (codec.decode_consumer_offset, codec.encode_consumer_offset),
    "token_change": (codec.decode_token_change, codec.encode_token_change),
}


def test_manifest_covers_every_kind():
    assert {c["kind"] for c in MANIFEST} == set(KINDS)


@pytest.mark.parametrize("case", MANIFEST, ids=[c["file"] for c in MANIFEST])
def test_golden(case):
    raw = (GOLDEN / case["file"]).read_bytes()
    decode, encode = KINDS[case["kind"]]
    value = decode(raw)
    if case["kind"] in ("controller_epoch", "consumer_offset", "token_change"):
        fields = {"value": value}
    else:
        fields = dataclasses.asdict(value)
    for key, expected in case.get("expect", {}).items():
        assert fields[key] == expected, key
    if case["roundtrip"]:
        assert encode(value) == raw
    if "written_as" in case:
        assert encode(value) == (GOLDEN / case["written_as"]).read_bytes()
    # Whatever we write reads back and re-encodes to the same bytes.
    written = encode(value)
    assert encode(decode(written)) == written


def test_old_broker_versions_decode_endpoints():
    v1 = codec.decode_broker(7, (GOLDEN / "broker/v1.json").read_bytes())
    assert v1.endpoints == (EndPoint("PLAINTEXT", "localhost", 9092, "PLAINTEXT"),)
    v2 = codec.decode_broker(7, (GOLDEN / "broker/v2.json").read_bytes())
    assert [ep.security_protocol for ep in v2.endpoints] == ["PLAINTEXT", "SSL"]
    four = codec.decode_broker(0, (GOLDEN / "broker/v5-real-four-listeners.json").read_bytes())
    assert four.plaintext_endpoint().listener_name == "PLAIN-9092"
    assert four.listener_security_protocol_map()["TLS-9093"] == "SSL"


def test_null_and_empty_data():
    assert codec.decode_producer_id_block(None) is None
    assert codec.decode_partition_state(None) is None
    assert codec.decode_entity_config(None) == EntityConfig({})
    assert codec.decode_topic("t", None).partitions == {}
    with pytest.raises(codec.CodecError):
        codec.decode_cluster_id(b"[]")
    with pytest.raises(codec.CodecError):
        codec.decode_controller_epoch(None)


def test_string_typed_fields():
    raw = codec.encode_controller(ControllerRegistration(3, 1717000000123))
    assert b'"timestamp":"1717000000123"' in raw
    assert codec.encode_cluster_id(ClusterId("abc")) == b'{"version":"1","id":"abc"}'


def test_jackson_escaping_matches_jackson_not_python():
    s = 'a"b\\c/d\x01\x1f\n\t\b\f\ré€😀'
    out = jackson.encode_as_string(s)
    assert out == '"a\\"b\\\\c/d\\u0001\\u001F\\n\\t\\b\\f\\ré€😀"'
    assert json.loads(out) == s


def test_partition_order_grows_like_scala_mutable_hashmap():
    # 12 partitions: the table doubles to 32 on the 12th insert, putting "11" (hash 1568) first.
    parts = {p: ReplicaAssignment((p % 3,)) for p in range(12)}
    raw = codec.encode_topic(TopicAssignment("t", parts))
    keys = list(json.loads(raw)["partitions"])
    assert keys[0] == "11" and keys[-1] == "10" and keys[1:11] == [str(i) for i in range(10)]


ints = st.integers(min_value=-1, max_value=2**31 - 1)
ids = st.integers(min_value=0, max_value=10_000)


@settings(max_examples=150, deadline=None)
@given(leader=ints, epoch=ints, isr=st.lists(ids, max_size=6), cepoch=ints, rec=st.sampled_from([0, 1]))
def test_partition_state_roundtrip(leader, epoch, isr, cepoch, rec):
    st_ = PartitionState(leader, epoch, tuple(isr), cepoch, rec)
    assert codec.decode_partition_state(codec.encode_partition_state(st_)) == st_


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers(0, 5000), st.lists(ids, min_size=1, max_size=4), max_size=60),
       st.one_of(st.none(), st.text("abcdefghijklmnopqrstuvwxyzABC_-0123456789", min_size=22, max_size=22)))
def test_topic_roundtrip(parts, topic_id):
    a = TopicAssignment("t", {p: ReplicaAssignment(tuple(r)) for p, r in parts.items()}, topic_id)
    back = codec.decode_topic("t", codec.encode_topic(a))
    assert back.partitions == a.partitions and back.topic_id == topic_id


listener = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(listener, st.sampled_from(["PLAINTEXT", "SSL", "SASL_SSL"]), st.integers(1, 65535)),
                min_size=1, max_size=6, unique_by=lambda t: t[0]),
       st.one_of(st.none(), st.text(min_size=1, max_size=8)),
       st.dictionaries(st.text("abcdefghij.", min_size=1, max_size=10), st.tuples(st.integers(0, 5), st.integers(5, 9)),
                       max_size=5),
       st.integers(0, 2**45))
def test_broker_roundtrip(listeners, rack, features, ts):
    eps = tuple(EndPoint(name, "h" + name.lower(), port, proto) for name, proto, port in listeners)
    reg = BrokerRegistration(4, eps, ts, rack, {k: SupportedVersionRange(*v) for k, v in features.items()})
    assert codec.decode_broker(4, codec.encode_broker(reg)) == reg


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=30))
def test_entity_config_roundtrip(cfg):
    assert codec.decode_entity_config(codec.encode_entity_config(EntityConfig(cfg))).config == cfg


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.text("abc", min_size=1, max_size=3), st.integers(0, 20)), max_size=12))
def test_partition_sets_roundtrip(tps):
    parts = tuple(dict.fromkeys(TopicPartition(t, p) for t, p in tps))
    from broker_meta.model import IsrChangeNotification
    back = codec.decode_isr_change(codec.encode_isr_change(IsrChangeNotification(parts)))
    assert set(back.partitions) == set(parts)

"""Kafka's znode encodings (ZkData.scala, Kafka 2.8 - 3.9): read every version, write the current one
byte for byte.

Writers mirror how Kafka builds each payload (which JVM map class, which keys inserted in which order)
and let jvmorder reproduce that map's iteration order; jackson reproduces the bytes. Readers are
lenient the way Kafka's are: unknown keys are ignored, optional keys may be absent.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

from . import jackson
from .jvmorder import (java_hashmap_order, java_map_hash, java_properties_order,
                       scala_immutable_order, scala_mutable_order)
from .model import (AclEntry, AclNode, BrokerRegistration, ClusterId, ConfigChangeNotification,
                    ControllerRegistration, DelegationTokenInfo, EndPoint, EntityConfig,
                    ExtendedAclChange, FeatureZNode, IsrChangeNotification, LEADER_RECOVERED,
                    LiteralAclChange, LogDirEventNotification, MigrationState, PartitionReassignment,
                    PartitionState, PreferredReplicaElection, ProducerIdBlock, ReplicaAssignment,
                    SupportedVersionRange, TopicAssignment, TopicPartition)


class CodecError(ValueError):
    """Bytes that no Kafka version would have written for this znode."""


def parse_json(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CodecError(f"not JSON: {data[:200]!r}") from e


def _obj(data: bytes | None, what: str) -> dict:
    js = parse_json(data)
    if not isinstance(js, dict):
        raise CodecError(f"{what}: expected a JSON object, got {data[:200]!r}" if data else f"{what}: no data")
    return js


def _ordered(keys_values: list[tuple[str, Any]], order: list[str]) -> dict:
    d = dict(keys_values)
    return {k: d[k] for k in order}


def _immutable_map(pairs: list[tuple[Any, Any]]) -> dict:
    """A Scala `Map(pairs*)`/`.toMap` as Jackson sees it."""
    return _ordered(pairs, scala_immutable_order([k for k, _ in pairs]))


def _mutable_map(pairs: list[tuple[str, Any]], added: list[tuple[str, Any]] = ()) -> dict:
    """A Scala `mutable.Map(pairs*)` followed by `+=` of `added`."""
    keys = [k for k, _ in pairs] + [k for k, _ in added]
    order = scala_mutable_order(keys, initial=len(pairs) if pairs else None)
    return _ordered(list(pairs) + list(added), order)


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise CodecError(f"{what}: expected an integer, got {v!r}")
    return v


def _str_int(v: Any, what: str) -> int:
    """Kafka writes some numbers as JSON strings (timestamps, producer-id bounds)."""
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError as e:
            raise CodecError(f"{what}: {v!r} is not a number") from e
    return _int(v, what)


# /controller_epoch ------------------------------------------------------------------------------

def encode_controller_epoch(epoch: int) -> bytes:
    return str(epoch).encode()


def decode_controller_epoch(data: bytes | None) -> int:
    if data is None:
        raise CodecError("/controller_epoch has no data")
    try:
        return int(data.decode())
    except ValueError as e:
        raise CodecError(f"/controller_epoch: {data!r}") from e


# /controller ------------------------------------------------------------------------------------

def encode_controller(reg: ControllerRegistration) -> bytes:
    pairs = [("version", reg.version), ("brokerid", reg.broker_id), ("timestamp", str(reg.timestamp))]
    if reg.version >= 2:
        pairs.append(("kraftControllerEpoch", -1 if reg.kraft_controller_epoch is None else reg.kraft_controller_epoch))
    return jackson.encode_as_bytes(_immutable_map(pairs))


def decode_controller(data: bytes | None, zk_version: int = -1) -> ControllerRegistration:
    js = _obj(data, "/controller")
    if "brokerid" not in js:
        raise CodecError(f"/controller without brokerid: {data!r}")
    kraft = js.get("kraftControllerEpoch")
    return ControllerRegistration(
        broker_id=_int(js["brokerid"], "brokerid"),
        timestamp=_str_int(js.get("timestamp", "-1"), "timestamp"),
        kraft_controller_epoch=None if kraft is None else _int(kraft, "kraftControllerEpoch"),
        version=_int(js.get("version", 1), "version"),
        zk_version=zk_version,
    )


# /brokers/ids/<id> ------------------------------------------------------------------------------

_ENDPOINT = re.compile(r"^(.*)://\[?([0-9a-zA-Z\-%._:]*)\]?:(-?[0-9]+)")
DEFAULT_SECURITY_PROTOCOL_MAP = {p: p for p in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")}


def parse_endpoint(connection_string: str, protocol_map: dict[str, str] | None = None) -> EndPoint:
    """`EndPoint.createEndPoint`: LISTENER://host:port, the protocol from the listener map."""
    m = _ENDPOINT.match(connection_string)
    if not m:
        raise CodecError(f"unable to parse {connection_string!r} to a broker endpoint")
    listener, host, port = m.group(1), m.group(2), int(m.group(3))
    pmap = DEFAULT_SECURITY_PROTOCOL_MAP if protocol_map is None else protocol_map
    if listener not in pmap:
        raise CodecError(f"no security protocol for listener {listener!r}")
    return EndPoint(listener, host or None, port, pmap[listener])


def encode_broker(reg: BrokerRegistration) -> bytes:
    plaintext = reg.plaintext_endpoint()
    host, port = (plaintext.host, plaintext.port) if plaintext else (None, -1)
    first = [("version", reg.version), ("host", host), ("port", port),
             ("endpoints", [ep.connection_string for ep in reg.endpoints]),
             ("jmx_port", reg.jmx_port), ("timestamp", str(reg.timestamp))]
    added: list[tuple[str, Any]] = []
    if reg.rack is not None and reg.version >= 3:
        added.append(("rack", reg.rack))
    if reg.version >= 4:
        added.append(("listener_security_protocol_map",
                      _immutable_map([(ep.listener_name, ep.security_protocol) for ep in reg.endpoints])))
    if reg.version >= 5:
        names = java_hashmap_order(list(reg.features))
        added.append(("features", {n: {"min_version": reg.features[n].min_version,
                                       "max_version": reg.features[n].max_version} for n in names}))
    return jackson.encode_as_bytes(_mutable_map(first, added))


def decode_broker(broker_id: int, data: bytes | None, broker_epoch: int = -1) -> BrokerRegistration:
    js = _obj(data, f"/brokers/ids/{broker_id}")
    version = _int(js.get("version"), "version")
    if version < 1:
        raise CodecError(f"unsupported version of broker registration: {data!r}")
    if version == 1:
        endpoints = (EndPoint("PLAINTEXT", js.get("host") or None, _int(js.get("port"), "port"), "PLAINTEXT"),)
    else:
        pmap = js.get("listener_security_protocol_map")
        endpoints = tuple(parse_endpoint(s, pmap) for s in js.get("endpoints", []))
    features = {
        name: SupportedVersionRange(_int(r.get("min_version"), "min_version"), _int(r.get("max_version"), "max_version"))
        for name, r in (js.get("features") or {}).items()
    }
    return BrokerRegistration(
        broker_id=broker_id,
        endpoints=endpoints,
        timestamp=_str_int(js.get("timestamp", "-1"), "timestamp"),
        rack=js.get("rack"),
        features=features,
        jmx_port=_int(js.get("jmx_port", -1), "jmx_port"),
        version=version,
        broker_epoch=broker_epoch,
    )


# /brokers/topics/<t> ----------------------------------------------------------------------------

def encode_topic(assignment: TopicAssignment) -> bytes:
    replicas, adding, removing = [], [], []
    for p, ra in assignment.partitions.items():
        replicas.append((str(p), list(ra.replicas)))
        if ra.adding_replicas:
            adding.append((str(p), list(ra.adding_replicas)))
        if ra.removing_replicas:
            removing.append((str(p), list(ra.removing_replicas)))
    first = [("version", assignment.version),
             ("partitions", _mutable_map([], replicas)),
             ("adding_replicas", _mutable_map([], adding)),
             ("removing_replicas", _mutable_map([], removing))]
    added = [("topic_id", assignment.topic_id)] if assignment.topic_id is not None else []
    return jackson.encode_as_bytes(_mutable_map(first, added))


def decode_topic(topic: str, data: bytes | None, zk_version: int = -1) -> TopicAssignment:
    js = parse_json(data)
    if js is None:
        return TopicAssignment(topic, {}, None, 3, zk_version)
    if not isinstance(js, dict):
        raise CodecError(f"/brokers/topics/{topic}: {data!r}")
    adding = js.get("adding_replicas") or {}
    removing = js.get("removing_replicas") or {}
    partitions = {
        int(p): ReplicaAssignment(tuple(replicas), tuple(adding.get(p, ())), tuple(removing.get(p, ())))
        for p, replicas in (js.get("partitions") or {}).items()
    }
    return TopicAssignment(topic, partitions, js.get("topic_id"), _int(js.get("version", 1), "version"), zk_version)


# .../partitions/<p>/state -----------------------------------------------------------------------

def encode_partition_state(state: PartitionState) -> bytes:
    pairs = [("version", 1), ("leader", state.leader), ("leader_epoch", state.leader_epoch),
             ("controller_epoch", state.controller_epoch), ("isr", list(state.isr))]
    if state.leader_recovery_state != LEADER_RECOVERED:
        pairs.append(("leader_recovery_state", state.leader_recovery_state))
    return jackson.encode_as_bytes(_immutable_map(pairs))


def decode_partition_state(data: bytes | None, partition_epoch: int = -1) -> PartitionState | None:
    js = parse_json(data)
    if js is None:
        return None
    if not isinstance(js, dict):
        raise CodecError(f"partition state: {data!r}")
    return PartitionState(
        leader=_int(js["leader"], "leader"),
        leader_epoch=_int(js["leader_epoch"], "leader_epoch"),
        isr=tuple(js["isr"]),
        controller_epoch=_int(js["controller_epoch"], "controller_epoch"),
        leader_recovery_state=_int(js.get("leader_recovery_state", LEADER_RECOVERED), "leader_recovery_state"),
        partition_epoch=partition_epoch,
        version=_int(js.get("version", 1), "version"),
    )


# /config/<type>/<name> and /config/changes ------------------------------------------------------

def encode_entity_config(config: EntityConfig | dict[str, str], removed: Iterable[str] = ()) -> bytes:
    """`removed` are keys deleted from the Properties after it was filled (their slots stay put)."""
    cfg = config.config if isinstance(config, EntityConfig) else config
    gone = list(removed)
    order = java_properties_order(list(cfg) + [k for k in gone if k not in cfg], removed=gone)
    props = {k: cfg[k] for k in order}
    return jackson.encode_as_bytes({"version": 1, "config": props})


def decode_entity_config(data: bytes | None) -> EntityConfig:
    if data is None:
        return EntityConfig({})
    js = parse_json(data)
    cfg = js.get("config") if isinstance(js, dict) else None
    if not isinstance(cfg, dict):
        return EntityConfig({})
    out = {}
    for k, v in cfg.items():
        if not isinstance(v, str):
            raise CodecError(f"config value for {k!r} is not a string: {v!r}")
        out[k] = v
    return EntityConfig(out, _int(js.get("version", 1), "version"))


def encode_config_change(n: ConfigChangeNotification) -> bytes:
    return jackson.encode_as_bytes(_immutable_map([("version", 2), ("entity_path", n.entity_path)]))


def decode_config_change(data: bytes | None) -> ConfigChangeNotification:
    js = _obj(data, "config change notification")
    version = js.get("version")
    if version == 1:
        return ConfigChangeNotification(f"{js['entity_type']}/{js['entity_name']}", 1)
    if version == 2:
        return ConfigChangeNotification(js["entity_path"], 2)
    raise CodecError(f"unknown config change notification version: {data!r}")


# notifications and admin znodes with partition sets ----------------------------------------------

def _partition_set(partitions: Iterable[TopicPartition]) -> list[dict]:
    """`partitions.map(tp => Map("topic"->.., "partition"->..).asJava)`: a Scala Set of Java maps."""
    tps = list(dict.fromkeys(partitions))
    order = scala_immutable_order(
        tps, hash_fn=lambda tp: java_map_hash([("topic", tp.topic), ("partition", tp.partition)]))
    return [{"topic": tp.topic, "partition": tp.partition} for tp in order]


def _decode_partition_list(data: bytes | None, what: str) -> tuple[TopicPartition, ...]:
    js = _obj(data, what)
    return tuple(TopicPartition(p["topic"], _int(p["partition"], "partition")) for p in js.get("partitions", []))


def encode_isr_change(n: IsrChangeNotification) -> bytes:
    return jackson.encode_as_bytes({"version": 1, "partitions": _partition_set(n.partitions)})


def decode_isr_change(data: bytes | None) -> IsrChangeNotification:
    return IsrChangeNotification(_decode_partition_list(data, "isr change notification"))


def encode_preferred_replica_election(n: PreferredReplicaElection) -> bytes:
    return jackson.encode_as_bytes({"version": 1, "partitions": _partition_set(n.partitions)})


def decode_preferred_replica_election(data: bytes | None) -> PreferredReplicaElection:
    return PreferredReplicaElection(_decode_partition_list(data, "preferred replica election"))


def encode_log_dir_event(n: LogDirEventNotification) -> bytes:
    return jackson.encode_as_bytes({"version": 1, "broker": n.broker, "event": n.event})


def decode_log_dir_event(data: bytes | None) -> LogDirEventNotification:
    js = _obj(data, "log dir event notification")
    return LogDirEventNotification(_int(js["broker"], "broker"), _int(js.get("event", 1), "event"),
                                   _int(js.get("version", 1), "version"))


def encode_reassignment(r: PartitionReassignment) -> bytes:
    # A Jackson bean (LegacyPartitionAssignment): properties in constructor order.
    return jackson.encode_as_bytes({"version": 1, "partitions": [
        {"topic": tp.topic, "partition": tp.partition, "replicas": list(replicas)} for tp, replicas in r.partitions]})


def decode_reassignment(data: bytes | None) -> PartitionReassignment:
    js = _obj(data, "/admin/reassign_partitions")
    return PartitionReassignment(tuple(
        (TopicPartition(p["topic"], _int(p["partition"], "partition")), tuple(p["replicas"]))
        for p in js.get("partitions", [])), _int(js.get("version", 1), "version"))


# /cluster/id, /feature, /latest_producer_id_block, /migration -----------------------------------

def encode_cluster_id(c: ClusterId) -> bytes:
    return jackson.encode_as_bytes({"version": "1", "id": c.id})


def decode_cluster_id(data: bytes | None) -> ClusterId:
    js = _obj(data, "/cluster/id")
    if "id" not in js:
        raise CodecError(f"failed to parse the cluster id json {data!r}")
    return ClusterId(js["id"], str(js.get("version", "1")))


def encode_feature(f: FeatureZNode) -> bytes:
    inner = []
    for name, max_level in f.features.items():
        if f.version == 1:
            inner.append((name, {"max_version_level": max_level,
                                 "min_version_level": f.min_version_levels.get(name, max_level)}))
        else:
            inner.append((name, {"max_version_level": max_level}))
    return jackson.encode_as_bytes(_mutable_map([("version", f.version), ("status", f.status),
                                                 ("features", _immutable_map(inner))]))


def decode_feature(data: bytes | None, zk_version: int = -1) -> FeatureZNode:
    js = _obj(data, "/feature")
    version = _int(js.get("version"), "version")
    if version not in (1, 2):
        raise CodecError(f"unsupported version {version} of feature information: {data!r}")
    status = js.get("status")
    if status not in (0, 1):
        raise CodecError(f"malformed status {status!r} in feature information: {data!r}")
    features, mins = {}, {}
    if not isinstance(js.get("features"), dict):
        raise CodecError(f"features map can not be absent in: {data!r}")
    for name, levels in js["features"].items():
        if "max_version_level" not in levels or (version == 1 and "min_version_level" not in levels):
            raise CodecError(f"version levels absent for feature {name!r}: {levels!r}")
        features[name] = _int(levels["max_version_level"], "max_version_level")
        if "min_version_level" in levels:
            mins[name] = _int(levels["min_version_level"], "min_version_level")
    return FeatureZNode(status, features, version, mins, zk_version)


def encode_producer_id_block(b: ProducerIdBlock) -> bytes:
    return jackson.encode_as_bytes({"version": 1, "broker": b.broker, "block_start": str(b.block_start),
                                    "block_end": str(b.block_end)})


def decode_producer_id_block(data: bytes | None) -> ProducerIdBlock | None:
    """None when no block was ever handed out (Kafka creates the znode with null data)."""
    if data is None or data == b"":
        return None
    js = _obj(data, "/latest_producer_id_block")
    return ProducerIdBlock(_int(js["broker"], "broker"), _str_int(js["block_start"], "block_start"),
                           _str_int(js["block_end"], "block_end"), _int(js.get("version", 1), "version"))


def encode_migration(m: MigrationState) -> bytes:
    return jackson.encode_as_bytes(_immutable_map([
        ("version", m.version), ("kraft_controller_id", m.kraft_controller_id),
        ("kraft_controller_epoch", m.kraft_controller_epoch), ("kraft_metadata_offset", m.kraft_metadata_offset),
        ("kraft_metadata_epoch", m.kraft_metadata_epoch)]))


def decode_migration(data: bytes | None) -> MigrationState:
    js = _obj(data, "/migration")
    return MigrationState(_int(js["kraft_controller_id"], "kraft_controller_id"),
                          _int(js["kraft_controller_epoch"], "kraft_controller_epoch"),
                          _int(js["kraft_metadata_offset"], "kraft_metadata_offset"),
                          _int(js["kraft_metadata_epoch"], "kraft_metadata_epoch"),
                          _int(js.get("version", 0), "version"))


# ACLs and delegation tokens ---------------------------------------------------------------------

def encode_acl_node(node: AclNode) -> bytes:
    """3.x AclEntry.toJsonCompatibleMap: java.util.HashMaps throughout."""
    acls = []
    for a in node.acls:
        pairs = {"principal": a.principal, "permissionType": a.permission_type,
                 "operation": a.operation, "host": a.host}
        acls.append({k: pairs[k] for k in java_hashmap_order(list(pairs))})
    outer = {"version": 1, "acls": acls}
    return jackson.encode_as_bytes({k: outer[k] for k in java_hashmap_order(list(outer))})


def decode_acl_node(data: bytes | None) -> AclNode:
    if data is None:
        return AclNode(())
    js = _obj(data, "acl node")
    return AclNode(tuple(AclEntry(a["principal"], a["permissionType"], a["operation"], a["host"])
                         for a in js.get("acls", [])), _int(js.get("version", 1), "version"))


def encode_extended_acl_change(c: ExtendedAclChange) -> bytes:
    return jackson.encode_as_bytes({"version": c.version, "resourceType": c.resource_type, "name": c.name,
                                    "patternType": c.pattern_type})


def decode_extended_acl_change(data: bytes | None) -> ExtendedAclChange:
    js = _obj(data, "extended acl change")
    return ExtendedAclChange(js["resourceType"], js["name"], js["patternType"], _int(js.get("version", 1), "version"))


def encode_literal_acl_change(c: LiteralAclChange) -> bytes:
    return f"{c.resource_type}:{c.name}".encode()


def decode_literal_acl_change(data: bytes | None) -> LiteralAclChange:
    if not data or b":" not in data:
        raise CodecError(f"expected a string in format ResourceType:ResourceName but got {data!r}")
    rtype, name = data.decode().split(":", 1)
    return LiteralAclChange(rtype, name)


def encode_delegation_token(t: DelegationTokenInfo) -> bytes:
    return jackson.encode_as_bytes(_immutable_map([
        ("version", t.version), ("owner", t.owner), ("tokenRequester", t.token_requester),
        ("renewers", list(t.renewers)), ("issueTimestamp", t.issue_timestamp), ("maxTimestamp", t.max_timestamp),
        ("expiryTimestamp", t.expiry_timestamp), ("tokenId", t.token_id)]))


def decode_delegation_token(data: bytes | None) -> DelegationTokenInfo | None:
    if data is None:
        return None
    js = _obj(data, "delegation token")
    return DelegationTokenInfo(js["owner"], js.get("tokenRequester", js["owner"]), tuple(js.get("renewers", [])),
                               _int(js["issueTimestamp"], "issueTimestamp"), _int(js["maxTimestamp"], "maxTimestamp"),
                               _int(js["expiryTimestamp"], "expiryTimestamp"), js["tokenId"],
                               _int(js.get("version", 3), "version"))


# plain-string payloads --------------------------------------------------------------------------

def encode_consumer_offset(offset: int) -> bytes:
    """/consumers/<group>/offsets/<topic>/<partition> (legacy consumer): the offset as ASCII."""
    return str(offset).encode()


def decode_consumer_offset(data: bytes | None) -> int | None:
    return None if data is None else int(data.decode())


def encode_token_change(token_id: str) -> bytes:
    """/delegation_token/token_changes/token_change_<seq>: the raw token id."""
    return token_id.encode()


def decode_token_change(data: bytes | None) -> str:
    if data is None:
        raise CodecError("token change notification without data")
    return data.decode()

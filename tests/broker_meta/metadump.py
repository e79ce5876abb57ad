"""A canonical dump of a Kafka metadata tree, to compare what one scenario leaves behind on different
servers (real ZooKeeper, standalone coord, coord ensembles).

Every znode under the client's chroot becomes one entry:

    path -> {"data": <compact JSON text in the stored key order, or null>, "version": Stat.version,
             "ephemeral": bool}

The data is the stored JSON re-serialised compactly with its key order kept, so a reordering of
Kafka's bytes would show. Only values that legitimately differ between two runs of the same
scenario are replaced by a placeholder:

- `timestamp` in `/brokers/ids/<id>` and `/controller` (wall clock);
- `brokerid` in `/controller`: when two surviving brokers race for the election, either may win;
  the caller checks separately that the named broker is live;
- `topic_id` in `/brokers/topics/<t>` and `id` in `/cluster/id` (random UUIDs).

zxid-derived values (czxid = broker epoch, mzxid, pzxid, ephemeralOwner) and times are not dumped.
Stat.version is, for every node: Kafka writes conditionally on it (partition state zkVersion = the
partition epoch, `/controller_epoch`'s version = the fencing version, the broker registration's
create + setData(0), topic znodes' add-partitions), so the same run must leave the same versions.
Every data node of a known kind is also decoded with broker_meta's codec, so the dump only holds
metadata Kafka could read.
"""
from __future__ import annotations

import json
import re
from typing import Callable

from kazoo.client import KazooClient

from broker_meta import codec

_BROKER = re.compile(r"^/brokers/ids/(\d+)$")
_TOPIC = re.compile(r"^/brokers/topics/([^/]+)$")
_STATE = re.compile(r"^/brokers/topics/[^/]+/partitions/\d+/state$")
_TOPIC_CONFIG = re.compile(r"^/config/[^/]+/[^/]+$")
_CONFIG_CHANGE = re.compile(r"^/config/changes/config_change_\d{10}$")


def _obj(data: bytes) -> dict:
    return json.loads(data.decode("utf-8"))  # dicts keep the stored key order


def _mask(obj: dict, **placeholders: str) -> dict:
    return {k: (placeholders[k] if k in placeholders and k in obj else v) for k, v in obj.items()}


def _canonical(path: str, data: bytes | None) -> str | None:
    if data is None:
        return None
    if data == b"":
        return ""  # empty, which is not null
    m = _BROKER.match(path)
    if m:
        codec.decode_broker(int(m.group(1)), data)
        obj = _mask(_obj(data), timestamp="<timestamp>")
    elif path == "/controller":
        codec.decode_controller(data)
        obj = _mask(_obj(data), brokerid="<controller>", timestamp="<timestamp>")
    elif path == "/controller_epoch":
        codec.decode_controller_epoch(data)
        obj = _obj(data)
    elif _TOPIC.match(path):
        codec.decode_topic(_TOPIC.match(path).group(1), data)
        obj = _mask(_obj(data), topic_id="<topic-id>")
    elif _STATE.match(path):
        codec.decode_partition_state(data)
        obj = _obj(data)
    elif path == "/cluster/id":
        codec.decode_cluster_id(data)
        obj = _mask(_obj(data), id="<cluster-id>")
    elif _CONFIG_CHANGE.match(path):
        codec.decode_config_change(data)
        obj = _obj(data)
    elif _TOPIC_CONFIG.match(path):
        codec.decode_entity_config(data)
        obj = _obj(data)
    else:
        try:
            obj = _obj(data)
        except ValueError:
            return "raw:" + data.hex()
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def canonical_dump(client: KazooClient) -> dict[str, dict]:
    """Every znode under the client's chroot (its "/" included), after a sync."""
    client.sync("/")
    out: dict[str, dict] = {}
    todo = ["/"]
    while todo:
        path = todo.pop()
        got = client.get(path)
        data, stat = got
        out[path] = {"data": _canonical(path, data), "version": stat.version,
                     "ephemeral": stat.ephemeralOwner != 0}
        for child in client.get_children(path):
            todo.append(("" if path == "/" else path) + "/" + child)
    return dict(sorted(out.items()))


def dump_text(dump: dict[str, dict]) -> str:
    return "{\n" + ",\n".join(f"  {json.dumps(p)}: {json.dumps(e, ensure_ascii=False)}" for p, e in dump.items()) + "\n}\n"


def differences(expected: dict[str, dict], got: dict[str, dict], limit: int = 40) -> list[str]:
    """Human-readable differences, expected first."""
    out = []
    for p in sorted(set(expected) | set(got)):
        a, b = expected.get(p), got.get(p)
        if a != b:
            out.append(f"{p}:\n    expected {a}\n    got      {b}")
    return out[:limit]


def assert_same(expected: dict[str, dict], got: dict[str, dict], what: str,
                detail: Callable[[], str] = lambda: "") -> None:
    diffs = differences(expected, got)
    assert not diffs, f"{what}: {len(diffs)} znodes differ\n" + "\n".join(diffs) + detail()

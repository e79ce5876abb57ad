"""Iteration order of the JVM maps Kafka hands to Jackson, so our JSON bytes equal Kafka's.

Kafka encodes znode JSON with `Json.encodeAsBytes(map.asJava)`: Jackson writes the keys in the
iteration order of whatever map Kafka built, and that order is a property of the map class and the
keys' hash codes, not of the source text. Readers never care, but byte-for-byte equality does, so
we reproduce the orders of the classes Kafka 2.8 - 3.9 uses (Scala 2.13 builds, JDK 9+):

- Scala 2.13 immutable `Map(...)` / `.toMap`: Map1..Map4 keep insertion order; five or more keys
  become a CHAMP trie (`immutable.HashMap`), iterated payloads-first then sub-nodes, each level
  indexed by 5 bits of `Hashing.improve(key.##)` starting at the low bits.
- Scala 2.13 `mutable.HashMap`: one flat table indexed by `h ^ (h >>> 16)`, buckets sorted by that
  improved hash, the table doubled when `size + 1 >= 0.75 * length` before an insert.
- `java.util.HashMap`: same index, buckets in insertion order, doubled when size exceeds 0.75 * n.
- `java.util.Properties` (JDK 9+): backed by a ConcurrentHashMap whose resize splits bins with the
  "lastRun" trick, reversing the nodes before the last run.

Verified against znodes written by real Kafka clusters (partition state, broker v5, topic v3); see
tests/broker_meta/test_jvmorder.py.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
_MASK32 = 0xFFFFFFFF


def _s32(x: int) -> int:
    x &= _MASK32
    return x - (1 << 32) if x & 0x80000000 else x


def java_string_hash(s: str) -> int:
    """`String.hashCode()`: 31-polynomial over UTF-16 code units, as a signed int."""
    h = 0
    data = s.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & _MASK32
    return _s32(h)


def java_hash(key: object) -> int:
    """`hashCode()` / Scala `##` for the key types Kafka uses (String, boxed Int)."""
    if isinstance(key, str):
        return java_string_hash(key)
    if isinstance(key, bool):
        return 1231 if key else 1237
    if isinstance(key, int):
        return _s32(key)
    raise TypeError(f"no JVM hash for {type(key).__name__}")


def scala_improve(hcode: int) -> int:
    """`scala.collection.Hashing.improve` (unsigned result, as the trie masks it)."""
    h = hcode & _MASK32
    h = (h + (~(h << 9) & _MASK32)) & _MASK32
    h ^= h >> 14
    h = (h + (h << 4)) & _MASK32
    return h ^ (h >> 10)


def _champ_order(keys: Sequence[K], hashes: dict, shift: int) -> list[K]:
    if shift >= 32:
        return list(keys)  # full collision node keeps insertion order
    groups: dict[int, list[K]] = {}
    for k in keys:
        groups.setdefault((hashes[k] >> shift) & 31, []).append(k)
    payload = [g[0] for _, g in sorted(groups.items()) if len(g) == 1]
    nested: list[K] = []
    for _, g in sorted(groups.items()):
        if len(g) > 1:
            nested.extend(_champ_order(g, hashes, shift + 5))
    return payload + nested


def scala_immutable_order(keys: Iterable[K], hash_fn: Callable[[K], int] = java_hash) -> list[K]:
    """Order of a Scala 2.13 immutable Map/Set built by inserting `keys` in order."""
    if hash_fn is java_hash:
        keys = tuple(keys)
        if all(isinstance(k, str) for k in keys):
            return list(_string_key_order(keys))  # znode key sets repeat: memoise
    return _scala_immutable_order(keys, hash_fn)


@lru_cache(maxsize=4096)
def _string_key_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_scala_immutable_order(keys, java_hash))


def _scala_immutable_order(keys: Iterable[K], hash_fn: Callable[[K], int]) -> list[K]:
    seen: list[K] = list(dict.fromkeys(keys))
    if len(seen) <= 4:
        return seen
    hashes = {k: scala_improve(hash_fn(k)) for k in seen}
    return _champ_order(seen, hashes, 0)


def _table_size_for(capacity: int) -> int:
    return min(_highest_one_bit(max(capacity - 1, 4)) * 2, 1 << 30)


def _highest_one_bit(i: int) -> int:
    return 1 << (i.bit_length() - 1) if i > 0 else 0


def scala_mutable_order(keys: Iterable[K], initial: int | None = None,
                        hash_fn: Callable[[K], int] = java_hash) -> list[K]:
    """Order of a Scala 2.13 `mutable.HashMap` after inserting `keys` in order.

    `initial` is the number of pairs given to `mutable.Map(pairs*)` (its known size sizes the
    table); None means an empty `mutable.Map()` grown by `+=`.
    """
    length = 16 if not initial else _table_size_for(int((initial + 1) / 0.75))
    inserted: list[K] = []
    present: set = set()
    for k in keys:
        if len(inserted) + 1 >= int(length * 0.75):
            length *= 2
        if k not in present:
            present.add(k)
            inserted.append(k)
    improved = {k: _s32(hash_fn(k) ^ ((hash_fn(k) & _MASK32) >> 16)) for k in inserted}
    pos = {k: i for i, k in enumerate(inserted)}
    return sorted(inserted, key=lambda k: (improved[k] & (length - 1), improved[k], pos[k]))


def java_hashmap_order(keys: Iterable[K], hash_fn: Callable[[K], int] = java_hash) -> list[K]:
    """Order of a default `java.util.HashMap` after `put`s in order (no treeified bins)."""
    length = 16
    inserted: list[K] = []
    for k in dict.fromkeys(keys):
        inserted.append(k)
        if len(inserted) > int(length * 0.75):
            length *= 2
    spread = {k: (hash_fn(k) & _MASK32) ^ ((hash_fn(k) & _MASK32) >> 16) for k in inserted}
    pos = {k: i for i, k in enumerate(inserted)}
    return sorted(inserted, key=lambda k: (spread[k] & (length - 1), pos[k]))


def java_properties_order(keys: Iterable[str], removed: Iterable[str] = ()) -> list[str]:
    """Order of `java.util.Properties` (JDK 9+, ConcurrentHashMap inside) after `setProperty`s.

    `removed` keys are removed after all inserts (kafka-configs --delete-config).
    """
    n = 16
    size_ctl = 12
    table: list[list[str]] = [[] for _ in range(n)]
    count = 0

    def spread(k: str) -> int:
        h = java_string_hash(k) & _MASK32
        return (h ^ (h >> 16)) & 0x7FFFFFFF

    for k in keys:
        b = table[spread(k) & (n - 1)]
        if k in b:
            continue
        b.append(k)
        count += 1
        if count >= size_ctl:
            table = _chm_transfer(table, n, spread)
            n *= 2
            size_ctl = n - (n >> 2)
    gone = set(removed)
    return [k for b in table for k in b if k not in gone]


def _chm_transfer(table: list[list[str]], n: int, spread: Callable[[str], int]) -> list[list[str]]:
    new: list[list[str]] = [[] for _ in range(2 * n)]
    for i in range(n - 1, -1, -1):
        nodes = table[i]
        if not nodes:
            continue
        run_bit = spread(nodes[0]) & n
        last_run = 0
        for j in range(1, len(nodes)):
            b = spread(nodes[j]) & n
            if b != run_bit:
                run_bit, last_run = b, j
        ln: list[str] = list(nodes[last_run:]) if run_bit == 0 else []
        hn: list[str] = list(nodes[last_run:]) if run_bit != 0 else []
        for node in nodes[:last_run]:
            if spread(node) & n == 0:
                ln.insert(0, node)
            else:
                hn.insert(0, node)
        new[i] = ln
        new[i + n] = hn
    return new


def java_map_hash(pairs: Sequence[tuple[str, object]]) -> int:
    """`AbstractMap.hashCode()`: sum of key.hashCode ^ value.hashCode."""
    total = 0
    for k, v in pairs:
        total += java_hash(k) ^ java_hash(v)
    return _s32(total)

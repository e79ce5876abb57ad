"""The iteration orders of ZooKeeper's Java collections, where a client can observe them.

ZooKeeper never sorts a session's ephemerals: getEphemerals lists them, and closeSession / expiry
deletes them (firing watches in that order), in the order of a java.util.HashSet clone, and a
connection's identities (whoAmI, the expansion of 'auth' ACLs) come out of a ConcurrentHashMap.
Both orders are by hash bucket (String.hashCode / Id.hashCode, spread as HashMap.hash), then by
insertion. These functions reproduce them from the element hashes, the table sizes the Java
collections would have, and an insertion sequence supplied by the caller.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1 << 16)
def string_hash(s: str) -> int:
    """java.lang.String.hashCode as an unsigned 32-bit value (over UTF-16 code units)."""
    h = 0
    b = s.encode("utf-16-be", errors="surrogatepass")
    for k in range(0, len(b), 2):
        h = (31 * h + (b[k] << 8 | b[k + 1])) & 0xFFFFFFFF
    return h


def spread(h: int) -> int:
    """HashMap.hash / ConcurrentHashMap.spread (the low bits are all that index a table)."""
    return (h ^ (h >> 16)) & 0x7FFFFFFF


def _grown_capacity(size: int, initial: int) -> int:
    """Table size of a HashMap that started at `initial` and had `size` entries put in."""
    cap = initial
    while size > cap * 3 // 4:
        cap *= 2
    return cap


def _clone_capacity(size: int) -> int:
    """Table size of HashMap.clone() of a map holding `size` entries (putMapEntries sizing)."""
    t = int(size / 0.75 + 1.0)
    n = 1
    while n < t:
        n *= 2
    return n


def hashset_clone_order(items) -> list:
    """Elements of a HashSet<String> (default capacity, grown by puts) as its clone iterates them.

    items: (string, insertion_seq) pairs. Exact while the set never held more than 12 elements
    (its table never grew); beyond that the table size is estimated from the current size."""
    items = list(items)
    if len(items) < 2:
        return [s for s, _ in items]
    c0 = _grown_capacity(len(items), 16) - 1
    c = _clone_capacity(len(items)) - 1

    def key(item):
        h = spread(string_hash(item[0]))
        return h & c, h & c0, item[1]
    return [s for s, _ in sorted(items, key=key)]


def id_hash(scheme: str, ident: str) -> int:
    """org.apache.zookeeper.data.Id.hashCode (jute-generated: 37 * (37 * 17 + scheme) + id)."""
    return (37 * (37 * 17 + string_hash(scheme)) + string_hash(ident or "")) & 0xFFFFFFFF


def concurrent_set_order(ids) -> list:
    """(scheme, id) pairs, given in insertion order, as a ConcurrentHashMap-backed set iterates."""
    ids = list(ids)
    if len(ids) < 2:
        return ids
    n = 16
    while len(ids) >= n * 3 // 4:
        n *= 2
    return [i for _, i in sorted(enumerate(ids), key=lambda e: (spread(id_hash(*e[1])) & (n - 1), e[0]))]

"""What ZooKeeper's metrics count per request and coord's other counters do not: bytes read and
written per top-level namespace (`read_per_namespace`, `write_per_namespace`: DataTree's
updateReadStat / updateWriteStat) and the latency of reads and of updates (`readlatency`,
`updatelatency`: ServerStats.updateLatency). Off unless the shell turns metrics on: then the core
calls it once per request and the shell reads it at scrape time.

Bytes are ZooKeeper's: a write counts the path and the data it stores (a delete, the path only); a
read counts the path, the data or child names it returns and a Stat's 68 bytes, and only when it
found the node. Per namespace only a count and a sum are kept (the dashboard reads the sum; a
namespace's quantiles would cost a sample per request): their quantiles are NaN. Latencies keep the
last `keep` samples for quantiles, plus exact counts and sums.
"""
from __future__ import annotations

STAT_BYTES = 68          # DataTree.STAT_OVERHEAD_BYTES: 6 longs and 5 ints
_GET_DATA, _EXISTS, _GET_CHILDREN, _GET_CHILDREN2 = 4, 3, 8, 12


def top_namespace(path: str | None) -> str | None:
    """PathUtils.getTopNamespace: "/a/b" -> "a"; "/" or no path -> None."""
    if not path:
        return None
    end = path.find("/", 1)
    ns = path[1:end] if end > 0 else path[1:]
    return ns or None


class LatencySamples:
    """The last `keep` latencies (a ring) with exact count and sum. Zeros come in runs (every read
    answered the moment it arrives) and are only counted as they come, written into the ring in one
    go before the next other value or a reader's settle(): the same ring, in the same order, for a
    counter increment per read instead of a ring store (issue 16's cost of metrics on reads)."""
    __slots__ = ("keep", "samples", "i", "count", "total", "zeros")

    def __init__(self, keep: int):
        self.keep = keep
        self.samples: list[int] = []
        self.i = 0
        self.count = 0
        self.total = 0
        self.zeros = 0          # zeros added and not yet in the ring (nor in count)

    def add(self, v: int) -> None:
        if self.zeros:
            self.settle()
        self.count += 1
        self.total += v
        s = self.samples
        if len(s) < self.keep:
            s.append(v)
        else:
            i = self.i
            s[i] = v
            i += 1
            self.i = 0 if i == self.keep else i

    def add_zeros(self, n: int) -> None:
        self.zeros += n

    def settle(self) -> None:
        """Put the pending zeros into the ring and the count; readers call it first."""
        n, self.zeros = self.zeros, 0
        if not n:
            return
        self.count += n
        s, keep = self.samples, self.keep
        fill = min(n, keep - len(s))
        if fill > 0:
            s.extend([0] * fill)
            n -= fill
        if n >= keep:                      # a lap or more: all zeros, the position moved by n mod keep
            s[:] = [0] * keep
            self.i = (self.i + n) % keep
            return
        i = self.i
        for _ in range(n):
            s[i] = 0
            i += 1
            if i == keep:
                i = 0
        self.i = i


_NO_TOP = object()        # matches no Node.top: the cached row's namespace is not known by its top


class NamespaceTable:
    """namespace -> [count, bytes], with the last namespace's row kept at hand: consecutive requests
    mostly share a namespace, and a `startswith` of "/ns/" costs neither the slice that
    top_namespace allocates nor the hash of that new string (read + latency accounting on PyPy: ~30
    ns per read before, ~10 after; `python -m coord.bench.core --accounting`). A miss looks the row up
    by the path's "/ns/" prefix, one slice and one hash as before. Why the cache is exact: a path that
    starts with the prefix has its first "/" after index 0 at the same place, so the same top
    namespace (ZooKeeper's validated paths never hold the "\0" that matches nothing here)."""
    __slots__ = ("rows", "by_prefix", "prefix", "row", "top")

    def __init__(self):
        self.rows: dict[str, list[int]] = {}          # read at scrape time
        self.by_prefix: dict[str, list[int]] = {}     # "/ns/" -> the row of "ns"
        self.prefix = "\0"
        self.row: list[int] = [0, 0]
        self.top = _NO_TOP                            # the Node.top of row's namespace, once known

    def add_node(self, top, path: str, n: int) -> None:
        """add() for a znode's path, given its Node.top: a pointer comparison when it is in the cached
        row's namespace (a prefix test costs ~6 instructions per character of the namespace on
        PyPy), add() otherwise, learning the top when the cached row is then its namespace's."""
        if top is self.top:
            row = self.row
            row[0] += 1
            row[1] += n
            return
        self.add(path, n)
        if top is not None and path.startswith(self.prefix):
            self.top = top

    def _row(self, ns: str) -> list[int]:
        row = self.rows.get(ns)
        if row is None:
            row = self.rows[ns] = [0, 0]
        return row

    def add(self, path: str | None, n: int) -> None:
        if path is not None and path.startswith(self.prefix):
            row = self.row
        elif not path:
            return
        else:
            end = path.find("/", 1)
            if end < 0:                              # "/ns" itself (top_namespace: path[1:])
                if len(path) < 2:
                    return
                row = self._row(path[1:])
            else:
                prefix = path[:end + 1]
                row = self.by_prefix.get(prefix)
                if row is None:
                    if end == 1:                     # "//...": no top namespace
                        return
                    row = self.by_prefix[prefix] = self._row(path[1:end])
                self.prefix = prefix
                self.row = row
                self.top = _NO_TOP
        row[0] += 1
        row[1] += n


class RequestStats:
    """The core's per-request accounting. The fast path (read_at_once, every getData or exists
    answered the moment it arrives) touches only this object's own fields: the hot namespace's
    pending read count and bytes and the pending zero latencies; `settle()` puts them where readers
    look. In the server that path is a JIT bridge, where every object reached through another costs
    its guards and loads again per read, and where a path-prefix test of the namespace cost ~14 + 6
    instructions per character of it (issue 16; docs/operations.md): so the hot namespace is known
    by its top-level znode (Node.top), a pointer comparison, and the table by path only on a change."""

    def __init__(self, keep: int = 4096):
        self.read_table = NamespaceTable()
        self.write_table = NamespaceTable()
        self.reads = self.read_table.rows            # namespace -> [count, bytes], read at scrape time
        self.writes = self.write_table.rows
        self.read_latency = LatencySamples(keep)
        self.update_latency = LatencySamples(keep)
        self.read_top = _NO_TOP                      # read_table.top, at hand for the fast path
        self.read_hits = 0                           # reads of read_top's namespace not yet in its row
        self.read_hit_bytes = 0
        self.read_zeros = 0                          # latency-0 reads not yet in read_latency

    def write(self, node, path: str, data) -> None:
        """A create, setData or delete of `node` applied to the tree (data None for a delete)."""
        self.write_table.add_node(node.top, path, len(path) + (len(data) if data else 0))

    def read(self, op: int, path: str | None, reply: bytes) -> None:
        """A read's reply as sent (length prefix, xid, zxid, err, body): its size gives what
        ZooKeeper counts (see the module docstring)."""
        if path is None or len(reply) < 20 or reply[16] or reply[17] or reply[18] or reply[19]:
            return                               # no node, or an error: ZooKeeper counts nothing
        if op == _GET_DATA:
            n = len(reply) - 24                  # the data and the Stat
        elif op == _EXISTS:
            n = len(reply) - 20                  # the Stat
        elif op == _GET_CHILDREN or op == _GET_CHILDREN2:
            names = int.from_bytes(reply[20:24], "big", signed=True)
            n = len(reply) - 24 - 4 * max(names, 0)   # the names' bytes (+ the Stat of getChildren2)
            if op == _GET_CHILDREN:
                n += STAT_BYTES
        else:
            return
        self._count_read(path, len(path) + n)

    def read_at_once(self, node, path: str, reply: bytes, head: int) -> None:
        """A getData or exists answered the moment it arrived (the core's fast path; latency 0):
        read() and latency() cut to what that case needs. `node` is the node read, None when the
        reply is an error (ZooKeeper counts nothing then). `head` is what the reply holds beyond the
        counted bytes: 24 for getData (the frame's 20 and the data's length), 20 for exists."""
        if node is not None:
            n = len(path) + len(reply) - head
            top = node.top
            if top is self.read_top:
                self.read_hits += 1
                self.read_hit_bytes += n
            else:
                self._fold_hits()                    # into the row they belong to, before it moves
                table = self.read_table
                table.add_node(top, path, n)
                self.read_top = table.top
        self.read_zeros += 1

    def _count_read(self, path: str, n: int) -> None:
        """A read counted by its path (read()), in the table."""
        self._fold_hits()
        table = self.read_table
        table.add(path, n)
        self.read_top = table.top

    def _fold_hits(self) -> None:
        if self.read_hits:
            row = self.read_table.row
            row[0] += self.read_hits
            row[1] += self.read_hit_bytes
            self.read_hits = self.read_hit_bytes = 0

    def latency(self, write: bool, ms: int) -> None:
        if write:
            self.update_latency.add(ms)
            return
        self._settle_zeros()
        self.read_latency.add(ms)

    def _settle_zeros(self) -> None:
        if self.read_zeros:
            self.read_latency.add_zeros(self.read_zeros)
            self.read_zeros = 0

    def settle(self) -> None:
        """Put the pending counts where readers look (`reads`, the latency rings); a scrape calls
        it first."""
        self._fold_hits()
        self._settle_zeros()
        self.read_latency.settle()
        self.update_latency.settle()

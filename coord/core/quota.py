"""Hard quota limits: ZooKeeper 3.7+'s `zookeeper.enforceQuota` (ZooKeeperServer.checkQuota).

Theory. A quota on /a lives in /zookeeper/quota/a/zookeeper_limits (StatsTrack text: `count`,
`bytes` soft limits, `countHardLimit`, `byteHardLimit` hard ones; -1 or absent is no limit), and the
tree keeps the subtree's usage in .../zookeeper_stats (coord.core.datatree). With enforcement on,
prep asks, for a create (+1 node, +len(data)) and a setData (+len(new) - len(old)), whether the
deepest quota root above the path would go over: a hard limit gives QUOTAEXCEEDED (-125) and counts
one `quota_exceeded_error_per_namespace` for the path's top namespace; a soft limit only warns (in
ZooKeeper too: a rate-limited log line, never an error).

As in ZooKeeper the usage is read from the tree, not from the txns still in flight: two creates in
one multi, or pipelined before the first commits, are each checked against the committed count.
Deletes, setACL and the other ops are never refused.
"""
from __future__ import annotations

from coord.core.datatree import _QUOTA_LIMIT, _QUOTA_STATS, DataTree, parse_stats_track
from coord.core.paths import QUOTA


class QuotaExceeded(Exception):
    """A hard limit would be passed; `root` is the quota root (ZooKeeper's message path)."""

    def __init__(self, root: str):
        super().__init__(root)
        self.root = root


class MalformedLimits(Exception):
    """A zookeeper_limits or zookeeper_stats node whose text StatsTrack cannot parse (ZooKeeper
    fails the request with a NumberFormatException: MARSHALLINGERROR)."""


class QuotaEnforcer:
    """checkQuota for one server, with the per-namespace count of refusals it made."""

    def __init__(self, tree: DataTree):
        self.tree = tree
        self.exceeded: dict[str, int] = {}   # quota_exceeded_error_per_namespace
        self.log = None                      # where the "Quota exceeded" lines go (ServerCore.log)
        self._last = ("", 0)                 # the last line and its repeats (rate limit, as RateLogger)

    def check(self, path: str, bytes_diff: int, count_diff: int) -> None:
        """Raise QuotaExceeded if the change at path passes a hard limit of its quota root."""
        tree = self.tree
        if not tree.quota_paths:
            return
        root = tree._quota_root(path)
        if root is None:
            return
        limit_node = tree.nodes.get(f"{QUOTA}{root}/{_QUOTA_LIMIT}")
        if limit_node is None:
            return
        limits = _stats(limit_node.data)
        count_soft, count_hard = limits.get("count", -1), limits.get("countHardLimit", -1)
        bytes_soft, bytes_hard = limits.get("bytes", -1), limits.get("byteHardLimit", -1)
        check_count = count_diff != 0 and (count_soft > -1 or count_hard > -1)
        check_bytes = bytes_diff != 0 and (bytes_soft > -1 or bytes_hard > -1)
        if not (check_count or check_bytes):
            return
        stats_node = tree.nodes.get(f"{QUOTA}{root}/{_QUOTA_STATS}")
        if stats_node is None:
            return
        usage = _stats(stats_node.data)
        if check_count:
            self._over(root, path, "count", usage.get("count", -1) + count_diff, count_soft, count_hard)
        if check_bytes:
            self._over(root, path, "bytes", usage.get("bytes", -1) + bytes_diff, bytes_soft, bytes_hard)

    def _over(self, root: str, path: str, what: str, new: int, soft: int, hard: int) -> None:
        limit = hard if hard > -1 else soft
        if new <= limit:
            return
        kind = "hard" if hard > -1 else "soft"
        if self.log is not None:
            self._log(f"Quota exceeded: {root} [{kind}{'Count' if what == 'count' else 'Byte'}Limit={limit}]")
        if hard > -1:
            ns = top_namespace(path)
            self.exceeded[ns] = self.exceeded.get(ns, 0) + 1
            raise QuotaExceeded(root)


    def _log(self, line: str) -> None:
        """A line once, then every 1000th repeat of it with the count (soft limits can hit on
        every create)."""
        last, n = self._last
        if line != last:
            self._last = (line, 0)
            self.log(line)
            return
        n += 1
        self._last = (line, n)
        if n % 1000 == 0:
            self.log(f"{line} (and {n} more times)")


def _stats(data) -> dict:
    st = parse_stats_track(data)
    if st is None:
        raise MalformedLimits(data)
    return st


def top_namespace(path: str) -> str:
    """PathUtils.getTopNamespace: the first segment (the metrics label)."""
    parts = path.split("/")
    return parts[1] if len(parts) > 1 else ""


def namespace_gauges(tree: DataTree) -> dict[str, dict[str, int]]:
    """QuotaMetricsUtils: quota_{count,bytes}_{limit,usage}_per_namespace, summed per top namespace
    over every leaf zookeeper_limits (hard limit if set, else soft) and zookeeper_stats node."""
    out = {f"quota_{w}_{k}_per_namespace": {} for w in ("count", "bytes") for k in ("limit", "usage")}
    nodes = tree.nodes
    stack = [QUOTA]
    while stack:
        path = stack.pop()
        node = nodes.get(path)
        if node is None:
            continue
        if node.children:
            stack.extend(f"{path}/{c}" for c in node.children)
            continue
        name = path.rsplit("/", 1)[1]
        if name not in (_QUOTA_LIMIT, _QUOTA_STATS) or node.data is None:
            continue
        ns = top_namespace(path[len(QUOTA):-len(name) - 1])
        st = parse_stats_track(node.data)
        if not ns or st is None:
            continue
        if name == _QUOTA_LIMIT:
            hard_count, hard_bytes = st.get("countHardLimit", -1), st.get("byteHardLimit", -1)
            vals = (("count_limit", hard_count if hard_count > -1 else st.get("count", -1)),
                    ("bytes_limit", hard_bytes if hard_bytes > -1 else st.get("bytes", -1)))
        else:
            vals = (("count_usage", st.get("count", -1)), ("bytes_usage", st.get("bytes", -1)))
        for key, v in vals:
            m = out[f"quota_{key}_per_namespace"]
            m[ns] = m.get(ns, 0) + v
    return out

"""`coord data dump-snapshot | compare-snapshots`: ZooKeeper's SnapshotFormatter and SnapshotComparer
jobs, for coord and ZooKeeper snapshots alike.

Either format is loaded into a DataTree (a ZooKeeper snapshot as `coord data import-zookeeper`
reads it), so a ZooKeeper snapshot and the coord snapshot imported from it compare equal: the same
znodes, data, Stat (as a client sees it), ACLs and digest.
"""
from __future__ import annotations

import base64
import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from coord.core.datatree import DataTree
from coord.datatools import _console, _progress, data_group

_STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
                "ephemeralOwner", "dataLength", "numChildren", "pzxid")


@dataclass
class LoadedSnapshot:
    path: Path
    format: str      # "coord" or "zookeeper"
    zxid: int
    tree: DataTree

    @property
    def digest(self) -> int:
        return self.tree.digest


def newest_snapshot_file(d: Path) -> Path:
    """The newest snapshot file of a coord or ZooKeeper data dir (or its version-2 dir)."""
    from coord.zkimport.zkfiles import list_files
    d = Path(d)
    vd = d / "version-2" if (d / "version-2").is_dir() else d
    files = list_files(vd, "snapshot")
    files = [(z, p) for z, p in files if not p.name.endswith((".tmp", ".corrupt"))]
    if not files:
        raise click.ClickException(f"no snapshot.* file in {vd}")
    return files[-1][1]


def _is_zookeeper(path: Path) -> bool:
    from coord.core import snapformat
    with open(path, "rb") as f:
        head = f.read(4)
    if head == snapformat.MAGIC:
        return False
    if head == b"ZKSN" or path.name.endswith((".gz", ".snappy")):
        return True
    raise click.ClickException(f"{path}: neither a coord snapshot (magic CDSN) nor a ZooKeeper one "
                               f"(magic ZKSN, or .gz/.snappy); its first bytes are {head!r}")


def load_any(path: Path, progress=None) -> LoadedSnapshot:
    """Load one snapshot file, or the newest snapshot of a data dir, whatever its format."""
    from coord.aio.snapshots import read_snapshot
    from coord.core.snapformat import SnapshotError
    from coord.zkimport.importer import build_tree
    from coord.zkimport.zkfiles import ZkFormatError, read_snapshot as read_zk
    path = Path(path)
    if path.is_dir():
        path = newest_snapshot_file(path)
    try:
        if _is_zookeeper(path):
            snap = read_zk(path)
            return LoadedSnapshot(path, "zookeeper", snap.zxid, build_tree(snap, progress))
        tree, info = read_snapshot(path, progress)
        return LoadedSnapshot(path, "coord", info.zxid, tree)
    except (SnapshotError, ZkFormatError, OSError) as e:
        raise click.ClickException(str(e) if str(e).startswith(str(path)) else f"{path}: {e}")


def node_record(path: str, node, with_data: bool) -> dict:
    st = dict(zip(_STAT_FIELDS, node.stat_values()))
    rec = {"path": path, "stat": st, "dataLength": st["dataLength"],
           "acl": [{"perms": p, "scheme": s, "id": i} for p, s, i in node.acl]}
    if with_data:
        rec["data"] = None if node.data is None else base64.b64encode(node.data).decode()
    return rec


def _ms(t: int) -> str:
    try:
        return datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (OverflowError, OSError, ValueError):
        return str(t)


def _sorted_paths(tree: DataTree) -> list[str]:
    return sorted(tree.nodes)


def _loaded(path: Path, label: str) -> LoadedSnapshot:
    prog, advance = _progress(_console(), f"loading {label}", None)
    with prog:
        return load_any(path, advance)


@data_group.command("dump-snapshot")
@click.argument("snapshot", type=click.Path(exists=True, path_type=Path))
@click.option("--data", "with_data", is_flag=True, help="Print each znode's data (base64 in JSON, repr in text).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: znodes, sessions, zxid, digest.")
def dump_snapshot_cmd(snapshot: Path, with_data: bool, as_json: bool) -> None:
    """Every znode (path, Stat, data length or data, ACL) and session of a snapshot file, coord or
    ZooKeeper (a data dir: its newest snapshot), like ZooKeeper's SnapshotFormatter."""
    snap = _loaded(snapshot, snapshot.name)
    tree = snap.tree
    paths = _sorted_paths(tree)
    eph: dict[int, int] = {}
    for p in paths:
        o = tree.nodes[p].owner
        if o > 0:
            eph[o] = eph.get(o, 0) + 1
    sessions = [{"id": f"0x{sid & 0xFFFFFFFFFFFFFFFF:x}", "timeout": to, "ephemerals": eph.get(sid, 0)}
                for sid, to in sorted(tree.sessions.items())]
    w = sys.stdout.write
    prog, advance = _progress(_console(), "dumping", len(paths))
    with prog:
        if as_json:
            head = {"file": str(snap.path), "format": snap.format, "zxid": f"0x{snap.zxid:x}",
                    "digest": f"0x{snap.digest:016x}", "node_count": len(paths), "sessions": sessions}
            w(json.dumps(head)[:-1] + ', "nodes": [\n')
            for i in range(0, len(paths), 10000):
                batch = paths[i:i + 10000]
                w(",\n".join(json.dumps(node_record(p, tree.nodes[p], with_data)) for p in batch)
                  + (",\n" if i + 10000 < len(paths) else "\n"))
                advance(len(batch))
            w("]}\n")
            return
        w(f"# {snap.format} snapshot {snap.path} zxid 0x{snap.zxid:x}\n")
        for i in range(0, len(paths), 10000):
            batch = paths[i:i + 10000]
            w("".join(_node_text(p, tree.nodes[p], with_data) for p in batch))
            advance(len(batch))
    w("Session Details (sid, timeout, ephemeralCount):\n")
    for s in sessions:
        w(f"{s['id']}, {s['timeout']}, {s['ephemerals']}\n")
    w(f"Last zxid: 0x{snap.zxid:x}\nznodes: {len(paths)}\nsessions: {len(sessions)}\n"
      f"digest: 0x{snap.digest:016x}\n")


def _node_text(p: str, n, with_data: bool) -> str:
    """One znode as SnapshotFormatter prints it (plus the ACL)."""
    st = dict(zip(_STAT_FIELDS, n.stat_values()))
    body = f"  data = {n.data!r}\n" if with_data else f"  dataLength = {st['dataLength']}\n"
    return (f"{p}\n  cZxid = 0x{st['czxid']:x}\n  ctime = {_ms(st['ctime'])}\n  mZxid = 0x{st['mzxid']:x}\n"
            f"  mtime = {_ms(st['mtime'])}\n  pZxid = 0x{st['pzxid']:x}\n  cversion = {st['cversion']}\n"
            f"  dataVersion = {st['version']}\n  aclVersion = {st['aversion']}\n"
            f"  ephemeralOwner = 0x{st['ephemeralOwner'] & 0xFFFFFFFFFFFFFFFF:x}\n{body}"
            "  acl = " + ", ".join(f"{s}:{i}:{perms}" for perms, s, i in n.acl) + "\n")


@dataclass
class Comparison:
    only_a: list[str]
    only_b: list[str]
    data: list[str]
    stat: list[str]
    acl: list[str]

    @property
    def equal(self) -> bool:
        return not (self.only_a or self.only_b or self.data or self.stat or self.acl)


def compare_trees(a: DataTree, b: DataTree) -> Comparison:
    """Znodes only in a, only in b, and in both with different data, Stat or ACL (sorted paths)."""
    na, nb = a.nodes, b.nodes
    c = Comparison(sorted(set(na) - set(nb)), sorted(set(nb) - set(na)), [], [], [])
    for p in sorted(set(na) & set(nb)):
        x, y = na[p], nb[p]
        if (x.data or b"") != (y.data or b""):
            c.data.append(p)
        if x.stat_values() != y.stat_values():
            c.stat.append(p)
        if tuple(x.acl) != tuple(y.acl):
            c.acl.append(p)
    return c


@data_group.command("compare-snapshots")
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
@click.option("--limit", "-n", default=20, show_default=True, help="How many differences of each kind to list.")
@click.option("--json", "as_json", is_flag=True, help="The summary and the first differences as JSON.")
def compare_snapshots_cmd(a: Path, b: Path, limit: int, as_json: bool) -> None:
    """Compare two snapshots, coord or ZooKeeper in any mix (a data dir: its newest snapshot), like
    ZooKeeper's SnapshotComparer. Exits 0 when they hold the same tree, 1 when they differ."""
    sa, sb = _loaded(a, "A"), _loaded(b, "B")
    c = compare_trees(sa.tree, sb.tree)
    sess_a, sess_b = set(sa.tree.sessions), set(sb.tree.sessions)
    summary = {
        "A": {"file": str(sa.path), "format": sa.format, "zxid": f"0x{sa.zxid:x}",
              "node_count": sa.tree.node_count(), "digest": f"0x{sa.digest:016x}", "sessions": len(sess_a)},
        "B": {"file": str(sb.path), "format": sb.format, "zxid": f"0x{sb.zxid:x}",
              "node_count": sb.tree.node_count(), "digest": f"0x{sb.digest:016x}", "sessions": len(sess_b)},
        "equal": c.equal and sa.digest == sb.digest,
        "only_in_A": len(c.only_a), "only_in_B": len(c.only_b), "different_data": len(c.data),
        "different_stat": len(c.stat), "different_acl": len(c.acl),
        "sessions_only_in_A": len(sess_a - sess_b), "sessions_only_in_B": len(sess_b - sess_a),
    }
    if as_json:
        summary["first"] = {"only_in_A": c.only_a[:limit], "only_in_B": c.only_b[:limit],
                            "different_data": c.data[:limit], "different_stat": c.stat[:limit],
                            "different_acl": c.acl[:limit]}
        click.echo(json.dumps(summary, indent=1))
    else:
        for k in ("A", "B"):
            s = summary[k]
            click.echo(f"{k}: {s['format']} {s['file']} zxid {s['zxid']}: {s['node_count']} znodes, "
                       f"{s['sessions']} sessions, digest {s['digest']}")
        click.echo(f"znodes only in A: {len(c.only_a)}, only in B: {len(c.only_b)}, with different data: "
                   f"{len(c.data)}, Stat: {len(c.stat)}, ACL: {len(c.acl)}; sessions only in A: "
                   f"{summary['sessions_only_in_A']}, only in B: {summary['sessions_only_in_B']}")
        for label, paths, tree_side in (("only in A", c.only_a, None), ("only in B", c.only_b, None),
                                        ("data differs", c.data, "data"), ("Stat differs", c.stat, "stat"),
                                        ("ACL differs", c.acl, "acl")):
            for p in paths[:limit]:
                detail = ""
                if tree_side == "stat":
                    x, y = sa.tree.nodes[p].stat_values(), sb.tree.nodes[p].stat_values()
                    detail = " " + ", ".join(f"{f}: {u} vs {v}" for f, u, v in zip(_STAT_FIELDS, x, y) if u != v)
                elif tree_side == "data":
                    detail = (f" ({len(sa.tree.nodes[p].data or b'')} vs "
                              f"{len(sb.tree.nodes[p].data or b'')} bytes)")
                click.echo(f"  {label}: {p}{detail}")
            if len(paths) > limit:
                click.echo(f"  ... {len(paths) - limit} more {label}")
        click.echo("EQUAL: same znodes, data, Stat, ACLs and digest" if summary["equal"] else "DIFFERENT")
    if not summary["equal"]:
        raise SystemExit(1)

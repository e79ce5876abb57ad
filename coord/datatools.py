"""`coord data inspect | import-zookeeper`: look into data dirs, and bring ZooKeeper's along (dump-log,
chop-log, repair-log: coord.logtools; dump-snapshot, compare-snapshots: coord.snaptools)."""
from __future__ import annotations

import datetime
from pathlib import Path

import click


def _progress(console, description: str, total: int | None):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True)
    task = p.add_task(description, total=total)
    return p, (lambda n: p.advance(task, n))


def _console():
    from rich.console import Console
    return Console(stderr=True)


def _out():
    from rich.console import Console
    c = Console()
    return c if c.is_terminal else Console(width=200)


_TXN_NAMES = {1: "create", 2: "delete", 5: "setData", 7: "setACL", 13: "check", 14: "multi",
              15: "create2", 16: "reconfig", 19: "createContainer", 20: "deleteContainer",
              21: "createTTL", -1: "error", -10: "createSession", -11: "closeSession"}


def describe_txn(t: int, txn) -> str:
    """A short human summary of one txn's content."""
    from coord.core.datatree import decode_txn
    if txn is None:
        return ""
    if t in (1, 15, 19, 21):
        flags = " ephemeral" if getattr(txn, "ephemeral", False) else ""
        ttl = f" ttl={txn.ttl}" if t == 21 else ""
        d = txn.data
        return (f"{txn.path} data={len(d) if d is not None else -1}B acl={len(txn.acl or [])} "
                f"parentCVersion={txn.parentCVersion}{flags}{ttl}")
    if t in (2, 20):
        return txn.path
    if t in (5, 16):
        return f"{txn.path} data={len(txn.data) if txn.data is not None else -1}B version={txn.version}"
    if t == 7:
        return f"{txn.path} acl={len(txn.acl or [])} version={txn.version}"
    if t == 13:
        return f"{txn.path} version={txn.version}"
    if t == -1:
        return f"err={txn.err}"
    if t == -10:
        return f"timeout={txn.timeOut}ms"
    if t == -11:
        return "deletes " + ",".join(txn.paths2Delete or []) if txn.paths2Delete else ""
    if t == 14:
        parts = []
        for sub in txn.txns:
            try:
                rec = decode_txn(sub.type, sub.data)
            except Exception as e:  # noqa: BLE001 - a dump shows what it can
                parts.append(f"{_TXN_NAMES.get(sub.type, sub.type)}(undecodable: {e})")
                continue
            parts.append(f"{_TXN_NAMES.get(sub.type, sub.type)}({describe_txn(sub.type, rec)})")
        return "[" + "; ".join(parts) + "]"
    return repr(txn)


def format_txn(hdr, txn) -> str:
    ts = datetime.datetime.fromtimestamp(hdr.time / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    name = _TXN_NAMES.get(hdr.type, str(hdr.type))
    return f"0x{hdr.zxid:x} {ts}Z session=0x{hdr.clientId & 0xFFFFFFFFFFFFFFFF:x} cxid={hdr.cxid} {name} {describe_txn(hdr.type, txn)}".rstrip()


@click.group("data")
def data_group() -> None:
    """Inspect coord data dirs, dump txn logs, import from Apache ZooKeeper."""


@data_group.command("inspect")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--log-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="dataLogDir, if the logs live apart from dataDir.")
@click.option("--verify/--no-verify", default=False,
              help="Also load the newest valid snapshot and replay the logs, as a start would (read-only).")
def inspect_cmd(data_dir: Path, log_dir: Path | None, verify: bool) -> None:
    """Snapshots, logs, zxid ranges, node count and digest of a coord data dir."""
    from rich.table import Table

    from coord.aio.datadir import log_dir_of, snap_dir_of, zookeeper_file_message
    from coord.aio.snapshots import list_snapshots, scan_snapshot
    from coord.aio.txnlog import list_logs
    from coord.core import logformat, snapformat
    console = _console()
    out = _out()
    sd = snap_dir_of(data_dir)
    if not sd.is_dir():
        sd = data_dir
    ld = log_dir_of(data_dir, log_dir)
    if not ld.is_dir():
        ld = log_dir or data_dir
    snaps = list_snapshots(sd)
    zk_msg = zookeeper_file_message([p for _, p in snaps + list_logs(ld)], data_dir)
    if zk_msg:
        raise click.ClickException(zk_msg)
    if not snaps and not list_logs(ld):
        raise click.ClickException(f"no snapshot.* or log.* files in {sd}" + ("" if ld == sd else f" or {ld}")
                                   + ": not a coord data dir (give dataDir, as in zoo.cfg)")
    t = Table(title=f"snapshots in {sd}")
    for col in ("file", "zxid", "bytes", "znodes", "sessions", "digest", "state"):
        t.add_column(col)
    newest_valid = None
    for zxid, p in snaps:
        try:
            info = scan_snapshot(p)
            state = "ok"
            if newest_valid is None:
                newest_valid = (p, info)
            t.add_row(p.name, f"0x{info.zxid:x}", str(p.stat().st_size), str(info.node_count),
                      str(info.session_count), f"0x{info.digest:016x}", state)
        except (snapformat.SnapshotError, OSError) as e:
            t.add_row(p.name, f"0x{zxid:x}", str(p.stat().st_size), "", "", "", f"[red]corrupt: {e}")
    for p in sorted(sd.glob("snapshot.*.corrupt")) + sorted(sd.glob("snapshot.*.tmp")):
        t.add_row(p.name, "", str(p.stat().st_size), "", "", "", "[yellow]ignored")
    out.print(t)
    logs = list_logs(ld)
    t = Table(title=f"txn logs in {ld}")
    for col in ("file", "first zxid", "last zxid", "txns", "bytes", "state"):
        t.add_column(col)
    total = 0
    last_zxid = None
    prog, advance = _progress(console, "scanning logs", len(logs))
    with prog:
        for first, p in logs:
            data = p.read_bytes()
            try:
                s = logformat.scan(data)
            except ValueError as e:
                t.add_row(p.name, f"0x{first:x}", "", "", str(len(data)), f"[red]bad header: {e}")
                advance(1)
                continue
            state = "ok"
            if s.hole:
                state = f"[red]hole: damage at {s.end}, intact record at {s.hole[0]}"
            elif s.damaged:
                state = f"[yellow]torn tail at {s.end} ({s.size - s.end} bytes)"
            total += len(s.records)
            if s.last_zxid is not None:
                last_zxid = s.last_zxid
            t.add_row(p.name, "" if s.first_zxid is None else f"0x{s.first_zxid:x}",
                      "" if s.last_zxid is None else f"0x{s.last_zxid:x}", str(len(s.records)),
                      str(s.size), state)
            advance(1)
    out.print(t)
    if newest_valid:
        p, info = newest_valid
        out.print(f"newest valid snapshot: {p.name} (zxid 0x{info.zxid:x}, {info.node_count} znodes, "
                  f"digest 0x{info.digest:016x}); logs: {total} txns, last zxid "
                  f"{'none' if last_zxid is None else hex(last_zxid)}")
    else:
        why = ("no valid snapshot" if snaps else
               "no snapshot yet (one is taken every snapCount txns; a start replays the logs)")
        out.print(f"{why}; logs: {total} txns, last zxid {'none' if last_zxid is None else hex(last_zxid)}")
    if verify:
        import shutil
        import tempfile

        from coord.aio.datadir import RecoveryError, recover
        # recovery may rename or truncate files: run it on a copy
        with tempfile.TemporaryDirectory() as tmp:
            cs, cl = Path(tmp) / "s", Path(tmp) / "l"
            shutil.copytree(sd, cs)
            shutil.copytree(ld, cl) if ld != sd else None
            prog, advance = _progress(console, "loading", newest_valid[1].node_count if newest_valid else None)
            try:
                with prog:
                    rec = recover(cs, cl if ld != sd else cs, progress=advance, freeze_gc=False)
            except RecoveryError as e:
                out.print(f"[red]a start would refuse: {e}")
                raise SystemExit(1)
            out.print(f"a start would load zxid 0x{rec.last_zxid:x}: {rec.tree.node_count()} znodes, "
                      f"{len(rec.tree.sessions)} sessions, digest 0x{rec.tree.digest:016x} "
                      f"(snapshot {rec.snapshot_s:.2f}s, {rec.replayed} txns replayed in {rec.replay_s:.2f}s)")
            for a in rec.actions:
                out.print(f"[yellow]{a}")


@data_group.command("import-zookeeper")
@click.argument("zk_data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("coord_data_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--zk-log-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="ZooKeeper's dataLogDir, if its logs live apart from dataDir.")
@click.option("--force", is_flag=True, help="Replace an existing coord data dir.")
def import_zookeeper_cmd(zk_data_dir: Path, coord_data_dir: Path, zk_log_dir: Path | None, force: bool) -> None:
    """Convert ZooKeeper 3.x's snapshot.* and log.* files (stopped server) into a coord data dir."""
    from coord.zkimport import ZkFormatError, import_zookeeper
    console = _console()
    prog, advance = _progress(console, "importing", None)
    try:
        with prog:
            res = import_zookeeper(zk_data_dir, coord_data_dir, zk_log_dir=zk_log_dir, force=force,
                                   progress=advance)
    except (ZkFormatError, OSError) as e:
        raise click.ClickException(str(e))
    for s in res.skipped_snapshots:
        click.echo(f"skipped snapshot {s}", err=True)
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"ZooKeeper snapshot: {res.snapshot or 'none'} (zxid 0x{res.snapshot_zxid:x}); "
               f"{res.replayed} txns replayed from {len(res.logs)} log file(s)")
    click.echo(f"imported {res.nodes} znodes and {res.sessions} sessions through zxid 0x{res.last_zxid:x}; "
               f"digest check: {res.digest_check}")
    click.echo(f"wrote {res.output}")
    if res.digest_check.startswith("MISMATCH"):
        raise SystemExit(1)

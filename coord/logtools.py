"""`coord data dump-log | chop-log | repair-log`: ZooKeeper's TxnLogToolkit and LogFormatter jobs, for
coord and ZooKeeper txn logs alike (the format is told by the file's magic: CDLG or ZKLG).

Chop and repair never change the original: they write a new file, or with --in-place keep the
original beside it under a name no server reads as a log (orig-<name>-<time>).
"""
from __future__ import annotations

import os
import struct
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import click

from coord.datatools import _TXN_NAMES, _console, _progress, data_group, format_txn

_OPS = {v.lower(): k for k, v in _TXN_NAMES.items()}


def _zxid(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a zxid (decimal, or hex as 0x1a)") from None


def log_files(target: Path) -> list[Path]:
    """One log file, or every log.<hex> file of a data dir (or its version-2 dir), in zxid order."""
    from coord.core.logformat import zxid_of_name
    if target.is_file():
        return [target]
    d = target / "version-2" if (target / "version-2").is_dir() else target
    found = sorted((zxid_of_name(n, "log"), d / n) for n in os.listdir(d)
                   if n.count(".") == 1 and zxid_of_name(n, "log") is not None)
    if not found:
        raise click.ClickException(f"no log.<zxid> files in {d}")
    return [p for _, p in found]


@dataclass
class LogRead:
    format: str               # "coord" or "zookeeper"
    txns: list                # [(TxnHeader, txn)]
    ends: list[int]           # offset just past each txn
    end: int                  # offset past the last intact txn
    size: int
    problem: str | None       # why reading stopped before the end, if it did
    data: bytes


def read_any_log(path: Path) -> LogRead:
    from coord.core import logformat
    data = path.read_bytes()
    if data[:4] == b"ZKLG":
        from coord.zkimport.zkfiles import ZkFormatError, read_log
        try:
            zl = read_log(path)
        except ZkFormatError as e:
            raise click.ClickException(str(e))
        return LogRead("zookeeper", [(e.hdr, e.txn) for e in zl.entries], zl.ends, zl.end, zl.size, zl.torn, data)
    try:
        s = logformat.scan(data)
    except ValueError as e:
        raise click.ClickException(f"{path}: {e} (neither a coord log, magic CDLG, nor a ZooKeeper one, ZKLG)")
    problem = None
    if s.hole:
        problem = (f"damaged record at offset {s.end}; an intact record (zxid 0x{s.hole[1]:x}) follows "
                   f"at offset {s.hole[0]}")
    elif s.damaged:
        problem = f"torn tail at offset {s.end} ({s.content_end - s.end} bytes of damage)"
    return LogRead("coord", [(h, t) for h, t, _ in s.records], [e for _, _, e in s.records], s.end, s.size,
                   problem, data)


def txn_paths(t: int, txn) -> list[str]:
    """The paths a txn touches (a multi's sub-ops; the ephemerals a closeSession deletes)."""
    from coord.core.datatree import decode_txn
    if txn is None:
        return []
    if t == 14:
        out = []
        for sub in txn.txns:
            try:
                out += txn_paths(sub.type, decode_txn(sub.type, sub.data))
            except Exception:  # noqa: BLE001 - an undecodable sub-op has no path to match
                pass
        return out
    if t == -11:
        return list(getattr(txn, "paths2Delete", None) or [])
    p = getattr(txn, "path", None)
    return [p] if p else []


def _under(path: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/") or "/"
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _op_codes(ops: tuple[str, ...]) -> set[int]:
    out = set()
    for o in ops:
        if o.lower() not in _OPS:
            raise click.BadParameter(f"unknown op {o!r}; one of: {', '.join(sorted(_TXN_NAMES.values()))}")
        out.add(_OPS[o.lower()])
    return out


@data_group.command("dump-log")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--zxid-from", help="Only txns with zxid >= this (decimal, or hex as 0x...).")
@click.option("--zxid-to", help="Only txns with zxid <= this.")
@click.option("--session", help="Only txns of this session id (hex as 0x..., or decimal).")
@click.option("--path", "path_prefix", help="Only txns touching this path or a znode under it.")
@click.option("--op", "ops", multiple=True, help="Only txns of this type (create, delete, setData, multi, "
              "createSession, closeSession, ...); repeat for several.")
def dump_log_cmd(target: Path, zxid_from, zxid_to, session, path_prefix, ops) -> None:
    """One line per txn of a coord or ZooKeeper txn log file, or of every log of a data dir in zxid
    order, like ZooKeeper's TxnLogToolkit --dump; the filters combine (all must match)."""
    lo, hi, sid = _zxid(zxid_from), _zxid(zxid_to), _zxid(session)
    codes = _op_codes(ops)
    files = log_files(target)
    w = sys.stdout.write
    prog, advance = _progress(_console(), "reading logs", sum(p.stat().st_size for p in files))
    shown = 0
    with prog:
        for f in files:
            lr = read_any_log(f)
            for hdr, txn in lr.txns:
                if lo is not None and hdr.zxid < lo or hi is not None and hdr.zxid > hi:
                    continue
                if sid is not None and hdr.clientId & 0xFFFFFFFFFFFFFFFF != sid & 0xFFFFFFFFFFFFFFFF:
                    continue
                if codes and hdr.type not in codes:
                    continue
                if path_prefix and not any(_under(p, path_prefix) for p in txn_paths(hdr.type, txn)):
                    continue
                w(format_txn(hdr, txn) + "\n")
                shown += 1
            if lr.problem:
                click.echo(f"# {f.name}: {lr.problem}", err=True)
            advance(f.stat().st_size)
    click.echo(f"# {shown} txns", err=True)


def _write_result(src: Path, out: Path | None, in_place: bool, kind: str, data: bytes) -> Path:
    """Write data as a new file (default <dir>/<kind>-<name>, which no server reads as a log), or
    over src after renaming src to orig-<name>-<time> beside it."""
    if in_place:
        if out is not None:
            raise click.UsageError("--in-place and --out exclude each other")
        backup = src.with_name(f"orig-{src.name}-{time.strftime('%Y%m%dT%H%M%S')}")
        os.rename(src, backup)
        click.echo(f"original kept as {backup}", err=True)
        target = src
    else:
        target = out or src.with_name(f"{kind}-{src.name}")
        if target.exists():
            raise click.ClickException(f"{target} exists; give --out")
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, target)
    return target


_out_opt = click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        help="Where to write (default: <kind>-<name> beside the file).")
_in_place_opt = click.option("--in-place", is_flag=True,
                             help="Replace the file, keeping the original beside it as orig-<name>-<time>.")


def _set_aside(path: Path, stamp: str) -> Path:
    """Rename a file to orig-<name>-<time> beside it: kept, but no server reads it as a log or snapshot."""
    to = path.with_name(f"orig-{path.name}-{stamp}")
    os.rename(path, to)
    return to


def chop_dir(target: Path, z: int) -> None:
    """Chop a data dir at zxid z, in place: the log file holding z is chopped after it, every later
    log file and every snapshot past z is set aside (orig-<name>-<time>), so that a server started
    on the dir recovers exactly the state at z. Nothing is changed when nothing would be left."""
    from coord.core.logformat import zxid_of_name
    d = target / "version-2" if (target / "version-2").is_dir() else target
    names = os.listdir(d)
    logs = sorted((zxid_of_name(n, "log"), d / n) for n in names
                  if n.count(".") == 1 and zxid_of_name(n, "log") is not None)
    snaps = sorted((zxid_of_name(n, "snapshot"), d / n) for n in names
                   if zxid_of_name(n, "snapshot") is not None and not n.endswith(".tmp"))
    if not logs and not snaps:
        raise click.ClickException(f"no log.<zxid> or snapshot.<zxid> files in {d}")
    holding = [p for start, p in logs if start <= z][-1:]        # the log whose txns reach z
    later = [p for start, p in logs if start > z] + [p for sz, p in snaps if sz > z]
    if not holding and not any(sz <= z for sz, _ in snaps):
        raise click.ClickException(f"nothing in {d} is at or before zxid 0x{z:x}: nothing would be left")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    if holding:
        lr = read_any_log(holding[0])
        kept = [i for i, (h, _) in enumerate(lr.txns) if h.zxid <= z]
        if len(kept) < len(lr.txns):
            end = lr.ends[kept[-1]] if kept else 16
            _write_result(holding[0], None, True, "chopped", lr.data[:end])
            click.echo(f"{holding[0].name}: kept {len(kept)} of {len(lr.txns)} txns (through zxid "
                       f"0x{lr.txns[kept[-1]][0].zxid if kept else 0:x})")
        else:
            click.echo(f"{holding[0].name}: every txn is at or before 0x{z:x}; unchanged")
    for p in later:
        click.echo(f"{p.name}: past 0x{z:x}; set aside as {_set_aside(p, stamp).name}")
    from coord.aio.txnlog import fsync_dir
    fsync_dir(d)


@data_group.command("chop-log")
@click.argument("log_file", type=click.Path(exists=True, path_type=Path))
@click.option("--zxid", "zxid_s", required=True, help="The last zxid to keep (decimal, or hex as 0x...).")
@_out_opt
@_in_place_opt
def chop_log_cmd(log_file: Path, zxid_s: str, out: Path | None, in_place: bool) -> None:
    """Keep the txns up to --zxid of a coord or ZooKeeper log, like TxnLogToolkit --chop. Given a
    data dir (or its version-2 dir), chop it in place: the log holding the zxid is chopped, later
    logs and snapshots past it are set aside as orig-<name>-<time>, so a server started on it
    recovers the state at that zxid. Given one file, later files are the caller's to remove."""
    z = _zxid(zxid_s)
    if log_file.is_dir():
        if out is not None:
            raise click.UsageError("a data dir is chopped in place (originals kept as orig-<name>-<time>); "
                                   "--out is for one log file")
        chop_dir(log_file, z)
        return
    lr = read_any_log(log_file)
    kept = [i for i, (h, _) in enumerate(lr.txns) if h.zxid <= z]
    if lr.txns and lr.txns[0][0].zxid > z:
        raise click.ClickException(f"{log_file} starts at zxid 0x{lr.txns[0][0].zxid:x}, after 0x{z:x}: "
                                   "nothing would be left")
    end = lr.ends[kept[-1]] if kept else 16
    target = _write_result(log_file, out, in_place, "chopped", lr.data[:end])
    click.echo(f"kept {len(kept)} of {len(lr.txns)} txns (through zxid "
               f"0x{lr.txns[kept[-1]][0].zxid if kept else 0:x}); wrote {target}")


def _zk_recover(data: bytes, recover_crc: bool):
    """Walk a ZooKeeper log's entries: (bytes to keep, entries kept, CRCs fixed, problem or None)."""
    from coord.zkimport.zkfiles import decode_entry
    out = bytearray(data[:16])
    p, n, kept, fixed, problem = 16, len(data), 0, [], None
    while p + 12 <= n:
        crc, ln = struct.unpack_from(">qi", data, p)
        if ln == 0:
            break
        if ln < 0 or p + 12 + ln + 1 > n:
            problem = f"entry at offset {p} cut short"
            break
        buf = data[p + 12:p + 12 + ln]
        if data[p + 12 + ln] != 0x42:
            problem = f"entry at offset {p} has no end marker"
            break
        try:
            decode_entry(buf)
        except Exception as e:  # noqa: BLE001 - any undecodable entry ends the good part
            problem = f"entry at offset {p} does not decode: {e}"
            break
        good = zlib.adler32(buf)
        if crc != good:
            if not recover_crc:
                problem = f"entry at offset {p} fails its checksum (0x{crc & 0xFFFFFFFFFFFFFFFF:x}, want 0x{good:x})"
                break
            fixed.append(p)
            crc = good
        out += struct.pack(">qi", crc, ln) + buf + b"\x42"
        kept += 1
        p += 12 + ln + 1
    return bytes(out), kept, fixed, problem


@data_group.command("repair-log")
@click.argument("log_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--recover-crc", is_flag=True, help="ZooKeeper logs: rewrite a bad checksum of an entry that "
              "still decodes, as TxnLogToolkit --recover does, instead of cutting there.")
@click.option("--force", is_flag=True, help="Cut even where intact records follow the damage (they are lost).")
@_out_opt
@_in_place_opt
def repair_log_cmd(log_file: Path, recover_crc: bool, force: bool, out: Path | None, in_place: bool) -> None:
    """Report the first bad record of a coord or ZooKeeper log and write the log cut before it (a
    torn tail); exits 0 with nothing written when the log is intact."""
    lr = read_any_log(log_file)
    if lr.format == "zookeeper":
        data, kept, fixed, problem = _zk_recover(lr.data, recover_crc)
        for off in fixed:
            click.echo(f"fixed the checksum of the entry at offset {off}")
        if not fixed and problem is None:
            click.echo(f"{log_file}: intact ({kept} txns); nothing written")
            return
        if problem:
            click.echo(f"{log_file}: {problem}; keeping {kept} txns before it")
    else:
        if recover_crc:
            raise click.UsageError("--recover-crc is for ZooKeeper logs (coord's records carry the "
                                   "CRC32 of their bytes, and a bad one means bad bytes)")
        if lr.problem is None:
            click.echo(f"{log_file}: intact ({len(lr.txns)} txns); nothing written")
            return
        click.echo(f"{log_file}: {lr.problem}; keeping {len(lr.txns)} txns before it")
        if "intact record" in lr.problem and not force:
            raise click.ClickException("intact records follow the damage: cutting would lose them "
                                       "(acknowledged txns); give --force to cut anyway")
        data = lr.data[:lr.end]
    target = _write_result(log_file, out, in_place, "repaired", data)
    click.echo(f"wrote {target}")

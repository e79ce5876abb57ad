"""Taking over the data volume a ZooKeeper container left behind, so that swapping the image keeps
every znode.

ZooKeeper and coord name their files alike (`version-2/snapshot.<zxid>`, `log.<zxid>`), so coord
cannot share the directory: on a volume whose version-2/ holds ZooKeeper's files (told apart by their
magic, ZKSN/ZKLG), coord keeps its own data in `<dataDir>/coord` (and `<dataLogDir>/coord`) and never
writes, moves or deletes one of ZooKeeper's files. On the first start, while that directory holds no
coord data, ZooKeeper's snapshot and logs are imported (coord.zkimport, the same import as
`coord data import-zookeeper`) into a scratch directory and moved into place only once the import
has succeeded and its digest check has not failed; a crash half-way leaves nothing that a later
start would mistake for coord data. A volume that cannot be read, or files that cannot be imported,
stop the start with a message: never a server on an empty tree in front of data it failed to read.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger("coord.container")

COORD_SUBDIR = "coord"
SCRATCH = "coord.importing"


class TakeoverError(Exception):
    """The volume cannot be read or imported; the message says what and what to do."""


def _unreadable(path: Path, e: OSError) -> TakeoverError:
    try:
        owner = f"it belongs to uid {path.stat().st_uid}, "
    except OSError:
        owner = ""
    return TakeoverError(
        f"{path}: cannot read it ({e.strerror}); {owner}this container runs as uid {os.getuid()}. "
        "Give the volume to uid 1000 (`chown -R 1000:1000`), or run the container as its owner (`user:`); "
        "coord will not start on an empty tree in front of data it cannot read")


def zookeeper_files(d: Path | None) -> list[Path]:
    """ZooKeeper's own snapshot.* and log.* files in d/version-2 (by magic), [] if none."""
    from coord.aio.datadir import VERSION_DIR, zookeeper_file_message
    if d is None:
        return []
    vdir = Path(d) / VERSION_DIR
    try:
        names = sorted(os.listdir(vdir))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise _unreadable(vdir, e) from None
    out = []
    for name in names:
        if not name.startswith(("snapshot.", "log.")) or name.count(".") != 1:
            continue
        p = vdir / name
        try:
            if p.is_file() and zookeeper_file_message([p], Path(d)) is not None:
                out.append(p)
        except OSError as e:
            raise _unreadable(p, e) from None
    return out


def coord_dirs(data_dir: Path, data_log_dir: Path | None) -> tuple[Path, Path | None]:
    """Where coord keeps its data on a volume ZooKeeper's files occupy."""
    log_dir = Path(data_log_dir) / COORD_SUBDIR if data_log_dir and Path(data_log_dir) != Path(data_dir) else None
    return Path(data_dir) / COORD_SUBDIR, log_dir


def coord_has_data(coord_dir: Path, coord_log_dir: Path | None) -> bool:
    from coord.aio.datadir import log_dir_of, snap_dir_of
    from coord.aio.snapshots import list_snapshots
    from coord.aio.txnlog import list_logs
    try:
        return bool(list_snapshots(snap_dir_of(coord_dir)) or list_logs(log_dir_of(coord_dir, coord_log_dir)))
    except OSError as e:
        raise _unreadable(coord_dir, e) from None


def take_over(data_dir: Path, data_log_dir: Path | None) -> tuple[Path, Path | None, object | None]:
    """(coord's data dir, coord's log dir, the ImportResult or None if coord already had data)."""
    from coord.aio.datadir import VERSION_DIR
    from coord.aio.txnlog import fsync_dir
    from coord.zkimport import ZkFormatError, import_zookeeper
    data_dir = Path(data_dir)
    coord_dir, coord_log = coord_dirs(data_dir, data_log_dir)
    if coord_has_data(coord_dir, coord_log):
        return coord_dir, coord_log, None
    zk_log = Path(data_log_dir) if data_log_dir and zookeeper_files(Path(data_log_dir)) else None
    scratch = data_dir / SCRATCH
    shutil.rmtree(scratch, ignore_errors=True)
    log.info("taking over ZooKeeper's data in %s%s: importing into %s (ZooKeeper's files stay as they are)",
             data_dir, f" and {zk_log}" if zk_log else "", coord_dir)
    try:
        res = import_zookeeper(data_dir, scratch, zk_log_dir=zk_log)
        if res.digest_check.startswith("MISMATCH"):
            raise ZkFormatError(f"the imported tree does not match ZooKeeper's digest ({res.digest_check})")
        dest = coord_dir / VERSION_DIR
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted((scratch / VERSION_DIR).iterdir()):
            os.replace(f, dest / f.name)
        fsync_dir(dest)
    except PermissionError as e:
        raise _unreadable(Path(e.filename or data_dir), e) from None
    except (ZkFormatError, OSError) as e:
        raise TakeoverError(
            f"cannot take over ZooKeeper's data in {data_dir}: {e}. ZooKeeper's files are untouched; coord "
            "will not start on an empty tree in front of them (fix or remove them, or import by hand with "
            "`coord data import-zookeeper`)") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for w in res.warnings:
        log.warning("import: %s", w)
    log.info("took over %d znodes and %d sessions through zxid 0x%x from %s; digest check: %s",
             res.nodes, res.sessions, res.last_zxid, res.snapshot or "the logs", res.digest_check)
    return coord_dir, coord_log, res

"""Zab's accepted and current epochs on disk, written atomically (Zab 1.0's acceptedEpoch/currentEpoch).

A peer acts on a new epoch only after it is durable (ZOOKEEPER-1154, -1549, -3104): so both epochs live
in one small file that is replaced atomically — write a temp file, fsync it, rename it over the old,
fsync the directory. A crash leaves either the old pair or the new pair, never one of each and never
an empty file. The file carries a checksum; a damaged or half-written one (possible only on a disk that
lies about fsync) is refused loudly rather than read as epoch 0, since acting on a forgotten epoch is
exactly how a server votes twice.

We also write ZooKeeper's two plain files (`acceptedEpoch`, `currentEpoch`) beside it for operators
and tools that look for them; they are informational and never read back.
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

FILE_NAME = "coord-epochs"
_MAGIC = "coord-epochs-v1"


class EpochFileError(Exception):
    pass


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, sync: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


def encode(accepted_epoch: int, current_epoch: int) -> bytes:
    body = f"{_MAGIC} {accepted_epoch} {current_epoch}"
    return f"{body} {zlib.crc32(body.encode()):08x}\n".encode()


def decode(data: bytes) -> tuple[int, int]:
    try:
        text = data.decode("ascii").strip()
        magic, acc, cur, crc = text.split(" ")
        body = f"{magic} {acc} {cur}"
        if magic != _MAGIC or int(crc, 16) != zlib.crc32(body.encode()):
            raise ValueError("bad magic or checksum")
        a, c = int(acc), int(cur)
    except (UnicodeDecodeError, ValueError) as e:
        raise EpochFileError(f"damaged epoch file ({e}): {data[:80]!r}") from None
    if a < 0 or c < 0 or c > a:
        raise EpochFileError(f"impossible epochs accepted={a} current={c}")
    return a, c


class EpochStore:
    """The epoch pair of one server, in `<dir>/coord-epochs` (dir is dataDir/version-2)."""

    def __init__(self, directory: Path, *, sync: bool = True):
        self.dir = Path(directory)
        self.path = self.dir / FILE_NAME
        self.sync = sync
        self.writes = 0

    def read(self) -> tuple[int, int]:
        """(accepted_epoch, current_epoch); (0, 0) for a server that never persisted any."""
        self.dir.mkdir(parents=True, exist_ok=True)
        stale = self.path.with_name(self.path.name + ".tmp")
        if stale.exists():
            stale.unlink()  # a crash before rename: the old file (or none) is the truth
        if not self.path.exists():
            return 0, 0
        return decode(self.path.read_bytes())

    def write(self, accepted_epoch: int, current_epoch: int) -> None:
        """Blocking; durable when it returns. Call it off the event loop when it syncs."""
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.path, encode(accepted_epoch, current_epoch), self.sync)
        for name, value in (("acceptedEpoch", accepted_epoch), ("currentEpoch", current_epoch)):
            try:
                _atomic_write(self.dir / name, f"{value}\n".encode(), sync=False)
            except OSError:
                pass
        self.writes += 1

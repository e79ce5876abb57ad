"""The data-directory files the file targets damage, written by the real writers, and a scratch dir.

Logs come from coord.aio.txnlog.TxnLog (small files so that the history spans several, with the
preallocated zero padding a crashed server leaves in its newest file); snapshots from
coord.core.snapformat.encode_tree, compressed or not.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from coord.aio.txnlog import TxnLog
from coord.core import snapformat
from coord.fuzz import history

LOG_FILE_BYTES = 700         # rolls the history over a few files
PRE_ALLOC_BYTES = 1024
SNAPSHOT_ZXIDS = (2, 9, 14, 21)


@lru_cache(maxsize=1)
def log_files() -> tuple:
    """((name, bytes), ...) oldest first, as a server that crashed after its last write leaves them."""
    with tempfile.TemporaryDirectory() as d:
        log = TxnLog(Path(d), force_sync=False, max_file_bytes=LOG_FILE_BYTES, pre_alloc_bytes=PRE_ALLOC_BYTES)
        log.start(0)
        for rec in history.txns():
            log.write([rec])
        out = tuple((p.name, p.read_bytes()) for p in log.files())
        os.close(log.fd)   # not log.close(): that would give back the newest file's padding
    return out


@lru_cache(maxsize=None)
def snapshot(zxid: int, compressed: bool) -> bytes:
    return snapformat.encode_tree(history.tree_after(zxid), compressed=compressed, created_ms=history.NOW_MS)


def scratch_base() -> str | None:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@lru_cache(maxsize=1)
def scratch_root() -> Path:
    given = os.environ.get("COORD_FUZZ_SCRATCH")   # the fuzzing process: its parent removes it
    if given:
        return Path(given)
    root = Path(tempfile.mkdtemp(prefix="coord-fuzz-", dir=scratch_base()))
    atexit.register(shutil.rmtree, root, True)
    return root


def fresh_data_dir() -> tuple[Path, Path]:
    """(snapshot dir, log dir), both empty, in the scratch area (reused from run to run)."""
    root = scratch_root() / "data"
    if root.exists():
        shutil.rmtree(root)
    snaps, logs = root / "snap" / "version-2", root / "log" / "version-2"
    snaps.mkdir(parents=True)
    logs.mkdir(parents=True)
    return snaps, logs


@contextlib.contextmanager
def quiet():
    """Recovery warns about every damaged file; a fuzzer makes thousands a second."""
    lg = logging.getLogger("coord")
    old = lg.level
    lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        lg.setLevel(old)

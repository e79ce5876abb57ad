"""Fuzz target: a damaged snapshot must be refused, never loaded wrong; a crafted one never crashes.

Input: a scenario byte, then a fault program (coord.fuzz.damage) for one snapshot that
snapformat.encode_tree wrote of the coord.fuzz.history tree at some zxid.

Damage (checksums left as the faults made them), checked:
- snapformat.load_bytes raises only SnapshotError, or gives exactly the tree that was written;
- SnapshotReceiver (a SNAP sync: the same bytes fed in fuzz-chosen pieces) agrees with it;
- snapformat.scan accepts whatever load accepts;
- recovery from a data dir holding the snapshot and intact logs (all of them, or only those after
  the snapshot) raises only RecoveryError, or loads exactly the tree at the last zxid written.

Crafted (scenario bit 1: every checksum re-sealed after the damage, an uncompressed snapshot, so
the fuzzer reaches the frame decoders): load and SnapshotReceiver raise only SnapshotError, and a
tree they accept is consistent (links between parents and children, the ephemeral index).
"""
from __future__ import annotations

import io
import struct
import zlib

from coord.aio.datadir import RecoveryError, recover
from coord.aio.snapshots import snapshot_name
from coord.core import snapformat
from coord.core.snapformat import SnapshotError, SnapshotReceiver
from coord.fuzz import damage, files, history


class Broken(AssertionError):
    """An invariant of a snapshot reader broke."""


_HDR_BODY = snapformat.HEADER_SIZE - 4
_FRAME = struct.Struct(">BIII")


def reseal(b: bytes) -> bytes:
    """Make every checksum (header and frames) right for the bytes as they are; an uncompressed
    frame also gets raw length = stored length. What a writer with a bug, or an attacker, makes."""
    b = bytearray(b)
    if len(b) < snapformat.HEADER_SIZE:
        return bytes(b)
    b[_HDR_BODY:snapformat.HEADER_SIZE] = struct.pack(">I", zlib.crc32(b[:_HDR_BODY]))
    compressed = struct.unpack_from(">H", b, 6)[0] & snapformat.COMPRESSED
    pos = snapformat.HEADER_SIZE
    while pos + _FRAME.size <= len(b):
        kind, raw_len, stored_len, _crc = _FRAME.unpack_from(b, pos)
        end = pos + _FRAME.size + stored_len
        if end > len(b):
            break
        if not compressed:
            raw_len = stored_len
        pre = struct.pack(">BII", kind, raw_len, stored_len)
        crc = zlib.crc32(b[pos + _FRAME.size:end], zlib.crc32(pre))
        b[pos:pos + _FRAME.size] = _FRAME.pack(kind, raw_len, stored_len, crc)
        pos = end
    return bytes(b)


def _load(b: bytes):
    """('ok', tree, info) or ('refused', reason)."""
    try:
        tree, info = snapformat.load_bytes(b)
    except SnapshotError as e:
        return ("refused", str(e))
    return ("ok", tree, info)


def _receive(b: bytes, pieces: list[int]):
    r = SnapshotReceiver()
    try:
        pos = 0
        for n in pieces:
            r.feed(b[pos:pos + n])
            pos += n
        r.feed(b[pos:])
        tree, info = r.finish()
    except SnapshotError as e:
        return ("refused", str(e))
    if r.data != b:
        raise Broken("SnapshotReceiver.data differs from the bytes fed to it")
    return ("ok", tree, info)


def _pieces(c: damage.Choices) -> list[int]:
    k = c.u8() % 6
    return [1 + c.u16() % 700 for _ in range(k)]


def test_one_input(data: bytes) -> None:
    c = damage.Choices(data)
    scenario = c.u8()
    crafted = bool(scenario & 2)
    compressed = bool(scenario & 1) and not crafted
    zxid = files.SNAPSHOT_ZXIDS[(scenario >> 2) & 3]
    all_logs = bool(scenario & 0x10)
    original = files.snapshot(zxid, compressed)
    pieces = _pieces(c)
    b, what = damage.apply_faults(c, original)
    if crafted:
        b = reseal(b)
    where = f"snapshot of 0x{zxid:x} ({'crafted' if crafted else 'damaged'}: {what})"

    loaded = _load(b)
    received = _receive(b, pieces)
    if loaded[0] != received[0]:
        raise Broken(f"{where}: load says {loaded[0]}, SnapshotReceiver (pieces {pieces}) says {received[0]}"
                     f" ({loaded[1] if loaded[0] == 'refused' else received[1]})")
    if loaded[0] == "ok":
        tree, info = loaded[1], loaded[2]
        if history.tree_state(received[1]) != history.tree_state(tree):
            raise Broken(f"{where}: load and SnapshotReceiver built different trees")
        try:
            snapformat.scan(io.BytesIO(b).read)
        except SnapshotError as e:
            raise Broken(f"{where}: loads, but scan refuses it: {e}") from None
        if crafted:
            bad = history.tree_problems(tree)
            if bad:
                raise Broken(f"{where}: loaded an inconsistent tree: {bad[:3]}")
        elif history.tree_state(tree) != history.reference_states()[zxid] or info.zxid != zxid:
            raise Broken(f"{where}: loaded a tree that differs from the one written")
    if crafted:
        return

    snap_dir, log_dir = files.fresh_data_dir()
    (snap_dir / snapshot_name(zxid)).write_bytes(b)
    logs = files.log_files()
    names = [n for n, _ in logs]
    if not all_logs:   # only the logs from the one holding zxid + 1
        firsts = [int(n.split(".")[1], 16) for n in names]
        start = max(i for i, f in enumerate(firsts) if f <= zxid + 1)
        logs = logs[start:]
    for name, raw in logs:
        (log_dir / name).write_bytes(raw)
    last = history.txns()[-1][0].zxid
    with files.quiet():
        try:
            rec = recover(snap_dir, log_dir, freeze_gc=False)
        except RecoveryError:
            if all_logs or loaded[0] == "ok":
                raise Broken(f"{where}: recovery refused though the logs alone, or the snapshot with them, "
                             "hold everything") from None
            return
    if rec.last_zxid != last or history.tree_state(rec.tree) != history.reference_states()[last]:
        raise Broken(f"{where}: recovery loaded a tree other than the one written (zxid 0x{rec.last_zxid:x})")
    if (rec.snapshot_path is not None) != (loaded[0] == "ok"):
        raise Broken(f"{where}: recovery {'used' if rec.snapshot_path else 'refused'} a snapshot that load "
                     f"{'refuses' if loaded[0] != 'ok' else 'accepts'}")


def seeds() -> dict[str, bytes]:
    out = {}
    for i, z in enumerate(files.SNAPSHOT_ZXIDS):
        for flags, kind in ((1, "zstd"), (0, "raw"), (2, "crafted")):
            s = bytes([flags | i << 2 | 0x10, 2, 0, 40, 1, 0])   # fed in pieces of 41 and 257 bytes
            n = len(files.snapshot(z, flags == 1))
            out[f"{kind}-0x{z:x}-intact"] = s + bytes([0])
            out[f"{kind}-0x{z:x}-truncated"] = s + damage.encode_faults((damage.TRUNCATE, n - 3))
            out[f"{kind}-0x{z:x}-flip-in-header"] = s + damage.encode_faults((damage.FLIP, 12, 5))
            out[f"{kind}-0x{z:x}-flip-in-nodes"] = s + damage.encode_faults((damage.FLIP, n // 2, 1))
            out[f"{kind}-0x{z:x}-zero-sector"] = s + damage.encode_faults((damage.ZERO, 64, 512))
            out[f"{kind}-0x{z:x}-appended"] = s + damage.encode_faults((damage.APPEND, b"E\x00\x00\x00\x00"))
    out["raw-only-later-logs-refused"] = bytes([0 | 1 << 2, 0]) + damage.encode_faults((damage.TRUNCATE, 40))
    return out

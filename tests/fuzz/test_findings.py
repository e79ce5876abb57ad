"""What the fuzzers found, each as a unit test named for it (docs/fuzzing.md lists them)."""

import pytest

from coord.aio.datadir import RecoveryError, recover
from coord.aio.snapshots import snapshot_name
from coord.fuzz import files, history
from coord.fuzz.history import multi
from coord.jute import records as R
from tests.unit.harness import OPEN, Harness


def test_client_reusing_an_outstanding_write_xid_is_closed_not_a_crash():
    """Found by the client target (fuzz-findings/client/crash-904e5e01...): two writes with the same
    xid, both waiting for their txns, shared one entry in ServerCore.waiting (keyed by session and
    xid), so the first txn's commit answered the second request with the first one's result, and
    _write_reply raised AttributeError (a create's reply from a multi's result) out of commit(),
    inside the log's durability callback; with other ops the connection hung instead (the first
    write's reply never came, and every reply behind it waited). A real client never reuses an xid that is outstanding;
    the server now closes a connection that does (the first write still commits)."""
    h = Harness()
    c = h.connect()
    c.send(14, raw=multi((5, R.SetDataRequest("/", b"x", -1))), xid=7)
    c.send(1, R.CreateRequest("/dup", b"", OPEN, 0), xid=7)
    h.durable()
    assert c.cid in h.closed
    assert h.core.tree.get("/").data == b"x"
    assert h.core.tree.get("/dup") is None
    assert not h.core.waiting


def test_restart_after_recovery_that_removed_a_torn_newest_log(tmp_path):
    """Found by the txnlog target (crash-325d5fa3...). Snapshot at 0x15 (the last txn); log.8
    (0x8-0x10) has a damaged record in its middle with intact ones after it; log.11 (0x11-0x15) is
    10 bytes, a header torn by a crash. The first recovery needs only log.11 (the one holding
    snapshot zxid + 1): it removes it and starts at 0x15. The next start, with nothing logged in
    between, finds log.8 the file that may hold 0x16, reads it, sees the hole and refuses, though
    every txn in log.8 is in the snapshot. Nothing is loaded wrong either time; the server that
    started once refused the second time. Now a hole with no intact record above the snapshot after
    it is not needed (coord.aio.datadir._hole_inside_snapshot): the second start loads the same tree."""
    snaps, logs = tmp_path / "snap", tmp_path / "log"
    snaps.mkdir()
    logs.mkdir()
    (snaps / snapshot_name(0x15)).write_bytes(files.snapshot(0x15, True))
    written = dict(files.log_files())
    (logs / "log.1").write_bytes(written["log.1"])
    holed = bytearray(written["log.8"])
    holed[300] ^= 0x10           # inside the record of 0xc (279-382); 0xd-0x10 follow intact
    (logs / "log.8").write_bytes(bytes(holed))
    (logs / "log.11").write_bytes(written["log.11"][:10])
    first = recover(snaps, logs, freeze_gc=False)
    assert first.last_zxid == 0x15 and not (logs / "log.11").exists()
    second = recover(snaps, logs, freeze_gc=False)
    assert second.last_zxid == 0x15
    assert history.tree_state(second.tree) == history.reference_states()[0x15]


@pytest.mark.xfail(strict=True, raises=RecoveryError, reason=(
    "coord.aio.datadir: after a recovery removed a torn newest log, the next start reads the log "
    "before it, whose header is damaged, and refuses; the first start did not need that log"))
def test_restart_after_recovery_that_removed_a_torn_newest_log_older_header_damaged(tmp_path):
    """Found by the txnlog target (crash-132ffd53...), the same mechanism as the test above with a
    damaged header instead of a hole: snapshot at 0x15, log.8 (0x8-0x10) with bytes 1-3 of its
    magic zeroed, log.11 a 10-byte torn header. The first start needs only log.11, removes it and
    serves 0x15; the next start (nothing logged in between) must read log.8, since it may now hold
    0x16, finds no coord header and refuses. Once log.11 is gone nothing says log.8 ends before
    0x11, so refusing is the cautious answer; but the server started once from the same files."""
    snaps, logs = tmp_path / "snap", tmp_path / "log"
    snaps.mkdir()
    logs.mkdir()
    (snaps / snapshot_name(0x15)).write_bytes(files.snapshot(0x15, True))
    written = dict(files.log_files())
    (logs / "log.1").write_bytes(written["log.1"])
    (logs / "log.8").write_bytes(b"C\0\0\0" + written["log.8"][4:])
    (logs / "log.11").write_bytes(written["log.11"][:10])
    first = recover(snaps, logs, freeze_gc=False)
    assert first.last_zxid == 0x15 and not (logs / "log.11").exists()
    second = recover(snaps, logs, freeze_gc=False)
    assert history.tree_state(second.tree) == history.reference_states()[0x15]

"""The low-disk warning (coord.aio.datadir.check_disk_room) and autopurge's default."""
import logging
from collections import namedtuple

from coord.aio import datadir
from coord.aio.zoocfg import ServerConfig, parse

Usage = namedtuple("Usage", "total used free")


def test_warns_when_less_than_two_snapshots_fit(tmp_path, monkeypatch):
    snaps, logs = tmp_path / "snap", tmp_path / "log"
    snaps.mkdir()
    logs.mkdir()
    monkeypatch.setattr("shutil.disk_usage", lambda d: Usage(10 << 30, 0, 150 << 20))
    assert datadir.check_disk_room(snaps, logs, 100 << 20)[0].startswith(
        f"low disk space for the snapshots in {snaps}: 150 MiB free, less than two snapshots (200 MiB)")
    assert len(datadir.check_disk_room(snaps, logs, 100 << 20)) == 1   # one disk: one warning
    assert datadir.check_disk_room(snaps, logs, 70 << 20) == []        # two 70 MiB snapshots fit
    assert datadir.check_disk_room(snaps, logs, 0) == []


def test_a_server_warns_at_start_and_after_a_snapshot(tmp_path, monkeypatch, caplog):
    import asyncio
    from coord.core.datatree import DataTree
    st = datadir.Storage(tmp_path / "data", force_sync=False)
    st.recover()
    tree = DataTree()
    for i in range(200):
        tree.create_node(f"/n{i}", b"x" * 1000, (), 0, -1, i + 1, 0)
    tree.last_zxid = 200

    async def snap():
        await st.snapshot(tree)
        await st.close()
    monkeypatch.setattr("shutil.disk_usage", lambda d: Usage(10 << 30, 0, 1000))
    with caplog.at_level(logging.WARNING, logger="coord.datadir"):
        asyncio.run(snap())
    assert any("low disk space for the snapshots" in r.message for r in caplog.records)
    caplog.clear()
    st2 = datadir.Storage(tmp_path / "data", force_sync=False)
    with caplog.at_level(logging.WARNING, logger="coord.datadir"):
        st2.recover()
    assert any("low disk space" in r.message for r in caplog.records)
    st2.txnlog.close()


def test_autopurge_is_on_by_default():
    assert ServerConfig().purge_interval_hours == 1
    assert parse("dataDir=/tmp/x\nautopurge.purgeInterval=0\n").purge_interval_hours == 0

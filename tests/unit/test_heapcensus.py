"""The heap-census debug hook (coord/aio/heapcensus.py): counts live objects by type, off unless asked."""
import os
import asyncio
import json


from coord.aio import heapcensus


class _Marker:
    pass


def test_census_counts_live_objects_by_type():
    keep = [_Marker() for _ in range(700)]
    c = heapcensus.census(top=100000)
    assert c["by_type"].get("_Marker") == len(keep)
    del keep
    assert heapcensus.census(top=100000)["by_type"].get("_Marker", 0) == 0   # garbage is not counted


def test_off_unless_named_and_a_bad_interval_is_refused(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("COORD_HEAP_CENSUS", raising=False)
    assert heapcensus.start_from_env() is None
    monkeypatch.setenv("COORD_HEAP_CENSUS", str(tmp_path / "c.jsonl"))
    monkeypatch.setenv("COORD_HEAP_CENSUS_S", "soon")
    assert heapcensus.start_from_env() is None
    assert "not a positive number" in caplog.text


def test_rows_are_appended_while_the_server_loop_runs(monkeypatch, tmp_path):
    path = tmp_path / "c.jsonl"
    monkeypatch.setenv("COORD_HEAP_CENSUS", str(path))
    monkeypatch.setenv("COORD_HEAP_CENSUS_S", "0.05")

    async def main():
        task = heapcensus.start_from_env()
        while not path.exists() or not path.read_text().endswith("\n"):
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(asyncio.wait_for(main(), 30))
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows and all(r["objects"] > 0 and r["by_type"] and r["census_s"] >= 0 and r["pid"] == os.getpid() for r in rows), rows

"""Interaction scripts (tests/zab/scripts/*.txt): each replays to exactly its golden transcript.

To accept a deliberate change of output: python -m coord.sim.script --rewrite tests/zab/scripts/X.txt
(and read the diff: a script also asserts, with `expect` and the simulator's checkers, that the bad
outcome it is named after cannot happen).
"""
from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from coord.sim.script import run_script

SCRIPTS = sorted((Path(__file__).parent / "scripts").glob("*.txt"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script(path: Path):
    text = path.read_text()
    got = run_script(text)
    assert "FAILED" not in got, got
    if got != text:
        diff = "".join(difflib.unified_diff(text.splitlines(True), got.splitlines(True), str(path), "now"))
        pytest.fail(f"transcript changed:\n{diff}")


def test_every_pitfall_has_a_script():
    names = " ".join(p.stem for p in SCRIPTS)
    for key in ("zk335", "zk1154", "zk1264_1282", "zk1549", "zk3104", "zk3642", "zk3911_3023", "zk4643",
                "zk4646_4685", "zk4785", "zk4925", "zk5010", "zk1277",
                "sync_answered_before_its_session_closes"):
        assert key in names, key

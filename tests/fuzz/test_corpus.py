"""Every committed corpus input, and every generated seed, through every fuzz target (fast, no atheris).

A target raises only when an invariant breaks, so each input here is a test that the client port,
the peer link and the file readers still hold their invariants on it. Inputs that once broke one
are kept in the corpus (finding-*) as regression tests.
"""
import importlib
from pathlib import Path

import pytest

from coord.fuzz import TARGETS, __main__ as runner

CORPUS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize("target", TARGETS)
def test_committed_corpus_replays_clean(target):
    files = sorted((CORPUS / target).iterdir())
    assert len(files) >= 10, f"the {target} seed corpus is missing: python -m coord.fuzz corpus"
    mod = importlib.import_module(f"coord.fuzz.{target}")
    for f in files:
        try:
            mod.test_one_input(f.read_bytes())
        except Exception as e:
            pytest.fail(f"{f.name}: {type(e).__name__}: {e}\nreplay: {runner.replay_command(target, f)}")


@pytest.mark.parametrize("target", TARGETS)
def test_generated_seeds_replay_clean(target):
    mod = importlib.import_module(f"coord.fuzz.{target}")
    seeds = mod.seeds()
    for name, data in seeds.items():
        mod.test_one_input(data)
    assert len(seeds) >= 10


def test_corpus_stays_small():
    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    assert 0 < total < 2 << 20, total

"""CI's exploring sweep: 1,000 seeds drawn fresh for every commit, each in its own configuration.

The fixed sets (test_seeds.py) guard what was found; this finds what was not. The range comes from the
commit being tested (coord.sim.sweep.ci_range), so every commit explores new seeds and a red run
replays: the failing test's id names its seeds and the failure prints each seed's replay command.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from coord.sim.sweep import MIX, ZK_PEER, SweepReport, ci_range, config_for, options_for, sweep
from coord.sim.world import SimResult

SEEDS = 1000
CHUNK = 100
STEPS = 6000


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


RANGE = ci_range(SEEDS, _commit())
CHUNKS = [RANGE[i:i + CHUNK] for i in range(0, SEEDS, CHUNK)]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seeds", CHUNKS, ids=[f"seeds-{c[0]}-{c[-1]}" for c in CHUNKS])
def test_fresh_seeds(seeds):
    report = sweep(seeds, steps=STEPS, jobs=1)
    assert report.seeds == len(seeds)
    assert not report.failures, report.render()


def test_ci_range_changes_with_the_commit_and_stays_clear_of_the_fixed_sets():
    a = ci_range(SEEDS, "0123456789abcdef")
    b = ci_range(SEEDS, "fedcba9876543210")
    assert a == ci_range(SEEDS, "0123456789abcdef")
    assert a.start != b.start and len(a) == len(b) == SEEDS
    assert min(a.start, b.start) >= 1_000_000       # the fixed CI sets live below 10,000


def test_a_seed_always_means_the_same_configuration_and_the_mix_is_covered():
    assert [config_for(s) for s in range(500, 600)] == [config_for(s) for s in range(500, 600)]
    labels = {config_for(s)[0] for s in range(2000)}
    assert labels == {m[0] for m in MIX} | {m[0] for m in ZK_PEER}
    share = sum(config_for(s)[0].startswith("zk-peer") for s in range(2000)) / 2000
    assert 0.03 < share < 0.09          # ZK_PEER_SHARE (6%) of the seeds, drawn with their own salt
    o = options_for(4242, 123)
    assert o.steps == 123 and o.seed == 4242


def test_a_failure_is_reported_with_its_replay_command():
    r = SweepReport()
    seed = next(s for s in range(100) if config_for(s)[0] == "n3-swarm")
    opts = options_for(seed, 6000)
    r.add("n3-swarm", SimResult(ok=False, seed=seed, message="something broke", virtual_ms=12), opts)
    r.add("n3", SimResult(ok=True, seed=seed + 1, wall_s=0.1), options_for(seed + 1, 6000))
    text = r.render()
    assert "1/2 seeds passed" in text
    assert f"FAILED seed {seed} (n3-swarm) at 12 virtual ms: something broke" in text
    assert f"replay: python -m coord.sim --seed {seed} --nodes 3 --steps 6000 --swarm -v" in text


def test_a_sweep_refuses_options_that_fix_the_configuration(capsys):
    """A sweep draws each seed's configuration from its mix, so --zk-peer (and the like) with --sweep
    would be silently ignored: it is refused, naming --seeds as the way to run those."""
    from coord.sim.__main__ import main
    with pytest.raises(SystemExit) as e:
        main(["--sweep", "1-2", "--zk-peer"])
    assert e.value.code == 2
    assert "use --seeds A-B" in capsys.readouterr().err

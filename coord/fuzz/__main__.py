"""python -m coord.fuzz: run a fuzz target for a fixed time, replay inputs, or write the seed corpus.

  python -m coord.fuzz client --seconds 600      fuzz one target (client, peer, txnlog, snapshot)
  python -m coord.fuzz client --replay FILE...   run inputs through the target (a finding's replay)
  python -m coord.fuzz corpus                    (re)write the seed corpus in tests/fuzz/corpus/
  python -m coord.fuzz list

A run reads the committed corpus (tests/fuzz/corpus/<target>/) and a working corpus it grows
(.coord/fuzz/<target>/, not committed); an input that breaks an invariant is written to
fuzz-findings/<target>/ and printed with its replay command, and the exit status is 1. The last
line is a summary: executions, coverage (libFuzzer's cov/ft), corpus size, findings.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from coord.fuzz import TARGETS
from coord.fuzz.files import scratch_base

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
WORK = ROOT / ".coord" / "fuzz"
FINDINGS = ROOT / "fuzz-findings"
MAX_LEN = {"client": 4096, "peer": 8192, "txnlog": 512, "snapshot": 512}
_STAT = re.compile(r"^#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+) corp: (\d+)/")


def replay_command(target: str, path: Path) -> str:
    return f"{sys.executable} -m coord.fuzz {target} --replay {path}"


def replay(target: str, paths: list[str]) -> int:
    mod = importlib.import_module(f"coord.fuzz.{target}")
    bad = 0
    for p in paths:
        files = sorted(Path(p).iterdir()) if Path(p).is_dir() else [Path(p)]
        for f in files:
            try:
                mod.test_one_input(f.read_bytes())
            except Exception:  # noqa: BLE001 - every escape is a finding, reported in full
                bad += 1
                print(f"FINDING {f}:", file=sys.stderr)
                traceback.print_exc()
    return 1 if bad else 0


def fuzz(target: str, seconds: int, findings: Path, work: Path, extra: list[str]) -> int:
    findings.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    seeds = CORPUS / target
    before = set(findings.iterdir())
    cmd = [sys.executable, "-m", "coord.fuzz.engine", target, str(work)]
    if seeds.is_dir():
        cmd.append(str(seeds))
    cmd += [f"-max_total_time={seconds}", f"-artifact_prefix={findings}/", "-timeout=20",
            "-rss_limit_mb=3072", f"-max_len={MAX_LEN[target]}", "-print_final_stats=1", *extra]
    t0 = time.monotonic()
    # libFuzzer ends the process without Python's exit handlers: its scratch dir is removed here
    scratch = tempfile.TemporaryDirectory(prefix="coord-fuzz-", dir=scratch_base())
    env = dict(os.environ, COORD_FUZZ_SCRATCH=scratch.name)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)
    last = None
    execs = None
    tail: list[str] = []
    for line in proc.stdout:
        sys.stdout.write(line)
        tail = (tail + [line])[-200:]
        m = _STAT.match(line)
        if m:
            last = m.groups()
        m = re.match(r"stat::number_of_executed_units: (\d+)", line)
        if m:
            execs = int(m.group(1))
    rc = proc.wait()
    scratch.cleanup()
    wall = time.monotonic() - t0
    found = sorted(set(findings.iterdir()) - before)
    for f in found:
        print(f"FINDING {target}: {f}\n  replay: {replay_command(target, f)}")
    if rc != 0 and not found:
        print(f"fuzzer exited with status {rc} and no finding written", file=sys.stderr)
    execs = execs if execs is not None else (int(last[0]) if last else 0)
    cov, ft, corp = (last[1], last[2], last[3]) if last else ("?", "?", "?")
    print(f"SUMMARY target={target} seconds={wall:.0f} execs={execs} exec/s={execs / max(wall, 1):.0f} "
          f"cov={cov} ft={ft} corpus={corp} findings={len(found)}")
    return 1 if (found or rc != 0) else 0


def write_corpus(out: Path) -> int:
    total = 0
    for target in TARGETS:
        mod = importlib.import_module(f"coord.fuzz.{target}")
        d = out / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for name, data in mod.seeds().items():
            (d / f"seed-{name}").write_bytes(data)
            total += len(data)
        print(f"{target}: {len(mod.seeds())} seeds in {d}")
    print(f"{total} bytes in all")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m coord.fuzz", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=TARGETS + ("corpus", "list"))
    ap.add_argument("--seconds", type=int, default=60, help="how long to fuzz (default 60)")
    ap.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs (or directories of them)")
    ap.add_argument("--findings", type=Path, help="where crashing inputs go (default fuzz-findings/<target>)")
    ap.add_argument("--work", type=Path, help="the growing corpus (default .coord/fuzz/<target>)")
    ap.add_argument("--out", type=Path, default=CORPUS, help="corpus: where to write the seeds")
    ap.add_argument("libfuzzer", nargs="*", help="after --: more libFuzzer flags")
    args = ap.parse_args(argv)
    if args.target == "list":
        print("\n".join(TARGETS))
        return 0
    if args.target == "corpus":
        return write_corpus(args.out)
    if args.replay:
        return replay(args.target, args.replay)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (CPython only): pip install atheris, or the [test] extra", file=sys.stderr)
        return 2
    return fuzz(args.target, args.seconds, args.findings or FINDINGS / args.target,
                args.work or WORK / args.target, args.libfuzzer)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())

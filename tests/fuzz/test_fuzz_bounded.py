"""Each fuzz target under atheris for a bounded time (COORD_FUZZ_SECONDS, 20 s by default).

A finding fails the test with the input saved in fuzz-findings/<target>/ and its replay command
(python -m coord.fuzz <target> --replay <file>) in the failure message. Inputs already in that
folder are replayed first, so a finding keeps failing (a rerun included) until the bug is fixed
or the file removed. atheris is a CPython extension from the [test] extra: in CI its absence is a
failure, elsewhere a skip.
"""
import os
import subprocess
import sys

import pytest

from coord.fuzz import TARGETS
from coord.fuzz.__main__ import FINDINGS, ROOT

SECONDS = int(os.environ.get("COORD_FUZZ_SECONDS", "20"))

try:
    import atheris  # noqa: F401
    HAVE_ATHERIS = True
except ImportError:
    HAVE_ATHERIS = False


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_for_a_bounded_time(target, tmp_path):
    if not HAVE_ATHERIS:
        if os.environ.get("CI"):
            pytest.fail("atheris is not installed: scripts/setup.sh installs the [test] extra")
        pytest.skip("atheris not installed (pip install atheris; CPython only)")
    earlier = FINDINGS / target
    if earlier.is_dir() and any(earlier.iterdir()):
        proc = subprocess.run([sys.executable, "-m", "coord.fuzz", target, "--replay", str(earlier)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (f"an earlier finding in {earlier} still fails "
                                      f"(python -m coord.fuzz {target} --replay {earlier}):\n" + proc.stderr[-6000:])
    proc = subprocess.run(
        [sys.executable, "-m", "coord.fuzz", target, "--seconds", str(SECONDS), "--work", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 240)
    out = proc.stdout + proc.stderr
    summary = [line for line in out.splitlines() if line.startswith(("SUMMARY", "FINDING", "  replay:"))]
    assert proc.returncode == 0, "\n".join(summary) + "\n--- fuzzer output (tail) ---\n" + out[-6000:]
    done = [line for line in summary if line.startswith("SUMMARY")]
    assert done and " findings=0" in done[-1], out[-3000:]
    execs = int(done[-1].split("execs=")[1].split()[0])
    assert execs > 100, f"the fuzzer barely ran: {done[-1]}"

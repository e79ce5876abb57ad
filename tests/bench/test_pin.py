"""The bench's CPU pinning (metrics_ab --pin): parsed and checked, and applied to every thread."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from coord.bench.launch import allowed_cpus, pin_process
from coord.bench.metrics_ab import parse_pin


def test_parse_pin_accepts_disjoint_available_sets_and_refuses_the_rest():
    have = sorted(allowed_cpus())
    assert have and set(have) <= set(range(1024))
    if len(have) >= 2:
        assert parse_pin(f"{have[0]}:{have[1]}") == ({have[0]}, {have[1]})
    with pytest.raises(argparse.ArgumentTypeError, match="disjoint"):
        parse_pin(f"{have[0]}:{have[0]}")
    with pytest.raises(argparse.ArgumentTypeError, match="disjoint"):
        parse_pin(f"{have[0]}:{max(have) + 1}")
    with pytest.raises(argparse.ArgumentTypeError, match="SERVER_CPUS:LOAD_CPUS"):
        parse_pin("zero:one")


def test_pin_process_binds_every_thread_of_a_running_process():
    cpu = min(allowed_cpus())
    code = "import threading, time\nfor _ in range(3): threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\nprint('up', flush=True); time.sleep(30)"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "up"
        pin_process(p.pid, {cpu})
        tasks = list(Path(f"/proc/{p.pid}/task").iterdir())
        assert len(tasks) >= 4
        for t in tasks:
            line = next(x for x in (t / "status").read_text().splitlines() if x.startswith("Cpus_allowed_list:"))
            assert line.split(":", 1)[1].strip() == str(cpu), (t.name, line)
    finally:
        p.kill()
        p.wait()

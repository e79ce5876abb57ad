"""`broker-meta controller run` as real processes, to kill -9, pause (SIGSTOP) and restart."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from coord.bench.launch import stop_process

ROOT = Path(__file__).resolve().parents[2]


class BrokerProcess:
    def __init__(self, connect: str, broker_ids: list[int], log_dir: Path, session_timeout_ms: int,
                 extra: list[str] | None = None):
        self.broker_ids = broker_ids
        self.log_path = log_dir / f"brokers-{'-'.join(map(str, broker_ids))}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker_meta.cli", "controller", "run", "--zookeeper", connect,
             "--brokers", ",".join(map(str, broker_ids)), "--session-timeout-ms", str(session_timeout_ms),
             "--rebalance-interval-s", "3600", "--json", *(extra or [])],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)      # a paused process must run to stop
        stop_process(self.proc)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

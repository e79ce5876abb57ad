"""Compile and drive the Java broker (java/KafkaFlowBroker.java) against the ZooKeeper client jar."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

ZK_JAR = Path("/usr/share/java/zookeeper.jar")
SOURCE = Path(__file__).parent / "java" / "KafkaFlowBroker.java"


def available() -> bool:
    return ZK_JAR.exists() and shutil.which("javac") is not None and shutil.which("java") is not None


def compile_harness(out_dir: Path) -> Path:
    """javac at test time, only the ZooKeeper client jar on the class path (its manifest brings the rest)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-nowarn", "-d", str(out_dir), "-cp", str(ZK_JAR), str(SOURCE)], check=True,
                   capture_output=True, timeout=180)
    return out_dir


class JavaBroker:
    def __init__(self, classes: Path, connect: str, broker_id: int, session_timeout_ms: int, log_dir: Path):
        self.broker_id = broker_id
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._stderr = open(log_dir / f"java-broker-{broker_id}-{time.monotonic_ns()}.log", "wb")
        self.proc = subprocess.Popen(
            ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", f"{classes}:{ZK_JAR}", "KafkaFlowBroker",
             "--connect", connect, "--broker-id", str(broker_id), "--port", str(9000 + broker_id),
             "--session-timeout-ms", str(session_timeout_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self._cond:
                self.events.append(ev)
                self._cond.notify_all()

    def wait_event(self, pred: Callable[[dict], bool], timeout: float = 30.0, after: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self.events[after:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"java broker {self.broker_id}: no matching event; saw {self.events[-10:]}")
                self._cond.wait(min(left, 0.2))

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """kill -9: no closeSession, the server expires the session after its timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._stderr.close()

    def quit(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(15)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()

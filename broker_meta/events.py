"""A single-threaded event queue, Kafka's ControllerEventManager in miniature: every election and
controller action runs here, one at a time, so controller state needs no locks."""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class EventThread:
    def __init__(self, name: str, max_queue: int = 100_000):
        self.name = name
        self._queue: "queue.Queue[tuple[str, Callable[[], None]] | None]" = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopped = False
        self.processed = 0
        self._idle = threading.Event()
        self._idle.set()

    def start(self) -> "EventThread":
        self._thread.start()
        return self

    def put(self, name: str, fn: Callable[[], None]) -> None:
        if self._stopped:
            return
        self._idle.clear()
        self._queue.put((name, fn))

    def stop(self, timeout: float = 10.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once the queue drained (test and benchmark helper)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.wait(0.05) and self._queue.empty():
                return True
        return False

    @property
    def queue_size(self) -> int:
        return self._queue.qsize()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            name, fn = item
            try:
                fn()
            except Exception:
                log.exception("%s: event %s failed", self.name, name)
            self.processed += 1
            if self._queue.empty():
                self._idle.set()

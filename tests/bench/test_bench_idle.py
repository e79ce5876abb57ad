"""bench-ensemble's idle part: what it reads from /proc (CPU and voluntary switches over every thread)."""
from __future__ import annotations

import os
import threading
import time

from coord.bench.ensemble import cpu_and_wakeups


def test_counts_wakeups_and_cpu_of_every_thread():
    cpu0, w0 = cpu_and_wakeups([os.getpid()])
    slept, stop = threading.Event(), threading.Event()

    def sleeper():                     # a thread of ours that sleeps and wakes 50 times, then waits
        for _ in range(50):
            time.sleep(0.002)
        slept.set()
        stop.wait()                    # alive while sampled: an ended thread leaves /proc/PID/task
    t = threading.Thread(target=sleeper)
    t.start()
    slept.wait(10)
    end = time.thread_time() + 0.05
    while time.thread_time() < end:    # and some CPU on this thread
        pass
    cpu1, w1 = cpu_and_wakeups([os.getpid()])
    stop.set()
    t.join()
    assert w1 - w0 >= 50               # the sleeper's own switches count, not only the main thread's
    assert cpu1 - cpu0 >= 0.03


def test_a_gone_process_counts_nothing():
    assert cpu_and_wakeups([2 ** 22 + 12345]) == (0.0, 0)

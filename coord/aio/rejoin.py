"""A member whose disk failed restarts itself in place and rejoins, as ZooKeeper's does.

When the txn log (or an epoch file, a truncation, a snapshot install) cannot be written, the member
stops at once: no later record may reach the disk after the failed ones, and the page cache can no
longer be trusted. ZooKeeper's member then stops serving, goes looking and rejoins by itself once
its disk takes writes again; an operator expects the same without a supervisor. coord gets there
by the shortest safe path: the process closes everything, waits, and re-executes itself with the
same pid and arguments, so it recovers from what is durable in its data dir exactly as after a
crash and rejoins by DIFF or SNAP. While the disk still fails, each attempt fails at its first write
and the next waits longer (1, 2, 4 ... 30 s); a member that ran for REJOIN_RESET_S since its last
restart starts counting again from 1 s.
"""
from __future__ import annotations

import logging
import os
import sys
import time

ATTEMPT = "COORD_REJOIN_ATTEMPT"
MAX_DELAY_S = 30.0
REJOIN_RESET_S = 300.0
_started = time.monotonic()

log = logging.getLogger("coord.server")


def delay_s(attempt: int) -> float:
    return min(MAX_DELAY_S, float(2 ** max(0, attempt - 1)))


def next_attempt(environ=os.environ, ran_s: float | None = None) -> int:
    """1 for the first restart (or after a long good run), else one more than the last."""
    ran = time.monotonic() - _started if ran_s is None else ran_s
    try:
        last = int(environ.get(ATTEMPT, "0"))
    except ValueError:
        last = 0
    return 1 if ran >= REJOIN_RESET_S else last + 1


def restart_in_place(sid: int, why: str) -> None:
    """Never returns: wait, then replace this process by the same server command."""
    attempt = next_attempt()
    wait = delay_s(attempt)
    msg = (f"coord: server {sid} stopped serving: {why}; restarting in place in {wait:.0f} s to recover "
           f"from its data dir and rejoin (attempt {attempt})")
    log.critical("%s", msg)
    for h in logging.getLogger().handlers:
        h.flush()
    time.sleep(wait)
    env = dict(os.environ)
    env[ATTEMPT] = str(attempt)
    os.execve(sys.executable, [sys.executable, "-m", "coord.cli", *sys.argv[1:]], env)

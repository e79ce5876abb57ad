"""Pausing CPython's cycle collector while a tree is built. A performance measure only (it changes
no result), so the pure core may use it: snapshot loading lives in the core."""
from __future__ import annotations

import gc
import platform
from contextlib import contextmanager

CPYTHON = platform.python_implementation() == "CPython"


@contextmanager
def cycle_collector_paused():
    """Building a tree (recovery, a SNAP, a snapshot child's encoding) makes millions of objects and
    no cycles: CPython's cycle collector would only walk them again and again, so it is paused. On
    PyPy, gc.disable() stops the *only* collector's major collections: garbage then piles up (a 1M-znode
    recovery peaked at 1.4 GB of heap with 0.68 GB live, against 0.89 GB with collections on, for
    +4% time), so there nothing is paused."""
    if not CPYTHON or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

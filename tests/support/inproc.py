"""A real CoordServer on an event loop of the test's own, in a thread: for tests that inspect or
instrument the shell (its loop turns, its bounds) while a real client talks to it over TCP."""
from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager


@contextmanager
def serving_on_a_thread(srv, loop: asyncio.AbstractEventLoop, after_start=None):
    """Start srv on loop in a daemon thread (after_start() runs on that thread once it listens),
    yield it, then stop the server and the loop."""
    started = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(srv.start())
        if after_start is not None:
            after_start()
        started.set()
        loop.run_forever()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(30), "the server did not start"
    try:
        yield srv
    finally:
        asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)

"""Running a coroutine as a process's main: the event loop (uvloop where installed), SIGINT/SIGTERM
as cancellation, and the log format every coord process shares. Used by `coord serve` and by the
commands that supervise processes (`coord ensemble`, `coord kafka up`)."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def run(coro_factory) -> None:
    """Run `coro_factory()` to completion; SIGINT or SIGTERM cancels it (its finally blocks run)."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(coro_factory())
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, main.cancel)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()

"""Ending a test's kazoo clients whatever state they are in: kazoo's threads would otherwise keep
retrying a server the test has stopped (and keep the interpreter alive)."""
from __future__ import annotations


def stop_all(clients) -> None:
    """stop() and close() every client; one that fails to stop does not keep the others running."""
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass

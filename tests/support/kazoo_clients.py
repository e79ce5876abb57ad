"""Ending a test's kazoo clients whatever state they are in: kazoo's threads would otherwise keep
retrying a server the test has stopped (and keep the interpreter alive)."""
from __future__ import annotations

from contextlib import contextmanager


def stop_all(clients) -> None:
    """stop() and close() every client; one that fails to stop does not keep the others running."""
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@contextmanager
def connected(hosts: str, timeout: float = 30.0):
    """A started KazooClient for the `with` block, stopped and closed after it whatever happened."""
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=hosts)
    try:
        zk.start(timeout=timeout)
        yield zk
    finally:
        stop_all([zk])

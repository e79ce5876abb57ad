"""A bench-only run-time switch for the Prometheus metrics, so their cost can be measured inside ONE
server process (coord.bench.metrics_ab --mode toggle): two processes with metrics off already differ
by 5-30% (each PyPy process JIT-compiles its own traces), far more than the 3% to be resolved.

Off unless the server is started with COORD_BENCH_METRICS_SWITCH=1 and with the Prometheus provider
configured; then SIGUSR1 switches metrics on and SIGUSR2 off. A signal, not a command word: the switch
opens nothing to network clients. "Off" undoes exactly what a server started without the provider
lacks: the core's request stats (bytes per namespace, read/update latency) and the tree's write
accounting, the txn-log batch hook, the GC-pause listener, the server's `metrics` (so mntr, the
AdminServer and the Zab hooks see none), and the work of a scrape (/metrics answers 503 without
rendering). The HTTP listener stays bound. Switching on again continues the same counters.
"""
from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("coord.metrics")

ENV = "COORD_BENCH_METRICS_SWITCH"
ON, OFF = signal.SIGUSR1, signal.SIGUSR2


def switch(server, metrics, on: bool) -> None:
    """Metrics of `server` (its ServerMetrics `metrics`) on or off, in the event loop."""
    if metrics.enabled == on:
        return
    core = server.core
    if on:
        metrics.attach()
        if core is not None:
            core.collect_request_stats(metrics.requests)
        metrics.gc.install()
        server.metrics = metrics
    else:
        server.metrics = None
        if server.txnlog.on_batch == metrics.on_log_batch:
            server.txnlog.on_batch = None
        if core is not None:
            core.collect_request_stats(None)
        metrics.gc.uninstall()
    metrics.enabled = on
    log.warning("bench switch: metrics %s", "on" if on else "off")


def install(server, loop) -> bool:
    """SIGUSR1 / SIGUSR2 switch the metrics, if ENV asks for it and the server has metrics."""
    metrics = getattr(server, "metrics", None)
    if os.environ.get(ENV, "") not in ("1", "true", "yes") or metrics is None:
        return False
    loop.add_signal_handler(ON, switch, server, metrics, True)
    loop.add_signal_handler(OFF, switch, server, metrics, False)
    log.warning("bench switch installed: SIGUSR1 metrics on, SIGUSR2 off (%s)", ENV)
    return True

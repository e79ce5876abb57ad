"""/metrics renders the families coord does not measure (zeros, ZK_FAMILIES) once per set and reuses
the bytes (ServerMetrics.render_page): the page must stay byte-identical to rendering every family
anew, on a real in-process server, before and after requests, and the block is rendered once."""
from __future__ import annotations

import asyncio
import gc

from coord.aio import metrics as metrics_mod
from coord.aio.server import CoordServer
from coord.aio.zoocfg import parse


def test_cached_page_equals_a_full_render(tmp_path, monkeypatch):
    cfg = parse(f"dataDir={tmp_path}\nclientPort=0\nclientPortAddress=127.0.0.1\nforceSync=no\n"
                "admin.enableServer=false\nmetricsProvider.className=" + metrics_mod.PROMETHEUS_PROVIDER + "\n"
                "metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort=0\n")
    loop = asyncio.new_event_loop()
    srv = CoordServer(cfg)
    renders = []
    real = metrics_mod.render

    def counting(fams):
        renders.append(len(fams))
        return real(fams)
    try:
        loop.run_until_complete(srv.start())
        m = srv.metrics
        # a request or two through the core, so that the measured families carry samples
        m.requests.latency(False, 3)
        m.requests.read(4, "/zookeeper", b"\0" * 24 + b"\0" * 68)
        m.on_log_batch(1.5, 1, 3, True)
        volatile = (b"uptime ", b"process_", b"python_gc", b"coord_pypy", b"coord_stall", b"coord_gc_pause")

        def masked(page: bytes) -> list[bytes]:
            """Every line; the value cut off where it moves with the clock or the process."""
            return [x.rsplit(b" ", 1)[0] if x.startswith(volatile) else x for x in page.split(b"\n")]
        gc.disable()                                       # no collection (and no pause sample) in between
        try:
            for _ in range(3):
                page = m.render_page(metrics_mod.runtime_families())
                full = metrics_mod.render(m.families() + metrics_mod.runtime_families())
                assert masked(page) == masked(full)
                assert page.count(b"\n") == full.count(b"\n") and b"\n# TYPE fsynctime summary\n" in page
        finally:
            gc.enable()
        monkeypatch.setattr(metrics_mod, "render", counting)
        m.render_page()
        m.render_page()
        unmeasured = len(m.family_parts()[1])
        assert unmeasured > 40                             # what the cache saves
        assert unmeasured not in renders                   # the block came from the cache both times
    finally:
        loop.run_until_complete(srv.stop())
        loop.close()

"""A real Prometheus server (Debian package `prometheus`) for tests/ops, and helpers to read /metrics.

Started on loopback with a generated prometheus.yml (scrape_interval 1s) and queried through its HTTP
API, as Grafana would query it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.support.real_zk import free_port
from coord.bench.launch import stop_process

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DASHBOARD = ROOT / "docs" / "grafana" / "zookeeper-coord.json"
PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


def need(ok: bool, what: str) -> None:
    """Missing component: a failure under CI=1, a skip with the reason elsewhere."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI run without {what} (scripts/setup.sh installs it)")
    pytest.skip(f"{what} not installed (scripts/setup.sh installs it)")


def zk_prometheus_jars() -> list[str]:
    """ZooKeeper's PrometheusMetricsProvider and client_java 0.9 (setup.sh fetches them from Maven
    Central: Debian's zookeeper lacks them), plus Debian's servlet API, which Jetty needs for it."""
    pom = Path(__file__).with_name("zk-prometheus-pom.xml")
    import hashlib
    d = ROOT / ".cache" / f"zk-prometheus-{hashlib.sha1(pom.read_bytes()).hexdigest()[:12]}"
    servlet = Path("/usr/share/java/servlet-api.jar")
    if not (d / ".complete").exists() or not servlet.exists():
        return []
    return [str(p) for p in sorted(d.glob("*.jar"))] + [str(servlet)]


def get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def status(url: str) -> int:
    """The HTTP status of a GET (an error status is an answer here, not a failure)."""
    try:
        get(url)
        return 200
    except urllib.error.HTTPError as e:
        return e.code


def families(text: str) -> dict[str, str]:
    """name -> type of every family in a text-format page."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, v = line.rpartition(" ")
            out[key] = float(v)
    return out


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str], job: str = "zookeeper"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.job = job
        (self.dir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: {job}\n    static_configs:\n"
            f"      - targets: [{', '.join(repr(t) for t in targets)}]\n")
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Prometheus":
        self.log = open(self.dir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.dir / 'prometheus.log').read_text()[-2000:]}")
            try:
                if b"Ready" in get(self.url + "/-/ready", 2):
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus not ready")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def query(self, expr: str) -> list[dict]:
        body = json.loads(get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def wait_for(self, expr: str, ok, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        res = None
        while time.monotonic() < deadline:
            res = self.query(expr)
            if ok(res):
                return res
            time.sleep(0.5)
        raise AssertionError(f"{expr}: still {res} after {timeout}s")


def dashboard_queries(job: str) -> list[tuple[str, str, str]]:
    """(row, panel title, expr with the dashboard's variables set to the job and every instance)."""
    dash = json.loads(DASHBOARD.read_text())
    out, row = [], ""
    for p in dash["panels"]:
        if p["type"] == "row":
            row = p["title"]
            continue
        for t in p.get("targets", []):
            expr = t["expr"].replace("$instance", ".*").replace("$job", job)
            out.append((row, p["title"], expr))
    return out

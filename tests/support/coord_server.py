"""Start and stop real coord server processes for tests (the same CLI a user runs)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.real_zk import four_letter, free_port
from coord.bench.launch import stop_process

ROOT = Path(__file__).resolve().parents[2]


class CoordProcess:
    """One `coord serve --config zoo.cfg` process with its own data dir and port."""

    def __init__(self, workdir: Path, client_port: int | None = None, *, force_sync: bool = False,
                 extra_cfg: dict[str, str] | None = None, env: dict[str, str] | None = None):
        self.workdir = Path(workdir)
        self.extra_env = dict(env or {})
        self.client_port = client_port or free_port()
        self.force_sync = force_sync
        self.extra_cfg = dict(extra_cfg or {})
        self.proc: subprocess.Popen | None = None

    @property
    def connect_string(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cfg = {
            "tickTime": "2000",
            "dataDir": str(self.data_dir),
            "clientPort": str(self.client_port),
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "*",
            "extendedTypesEnabled": "true",
            "forceSync": "yes" if self.force_sync else "no",
        }
        cfg.update(self.extra_cfg)
        path = self.workdir / "zoo.cfg"
        path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
        return path

    def start(self, wait: float = 20.0) -> "CoordProcess":
        cfg = self.write_config()
        self.log = open(self.workdir / "coord.log", "ab")
        env = dict(os.environ, PYTHONPATH=str(ROOT), **self.extra_env)
        self.proc = subprocess.Popen([sys.executable, "-m", "coord.cli", "serve", "--config", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                                     start_new_session=True)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"coord exited with {self.proc.returncode}: "
                                   + (self.workdir / "coord.log").read_text()[-2000:])
            try:
                if four_letter("127.0.0.1", self.client_port, "ruok", 1.0) == "imok":
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"coord on {self.connect_string} not serving after {wait}s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, signal.SIGKILL if kill else signal.SIGTERM)
        self.proc = None
        self.log.close()

    def log_text(self) -> str:
        return (self.workdir / "coord.log").read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> bool:
        """True once `text` is in the server's log, False if it is not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def start_coord(workdir: Path, **kw) -> CoordProcess:
    """Entry point other suites (broker_meta) use to run the same tests against coord."""
    return CoordProcess(Path(workdir), **kw).start()


class _MemberHandle:
    """A coord ensemble member in the shape of real_zk.RealZooKeeper (what shared suites expect)."""

    def __init__(self, member):
        self.member = member

    @property
    def proc(self):
        return self.member.proc

    @property
    def connect_string(self) -> str:
        return self.member.connect_string

    @property
    def client_port(self) -> int:
        return self.member.client_port

    def mode(self) -> str | None:
        return self.member.mode()

    def start(self):
        self.member.start()
        return self

    def stop(self, kill: bool = False) -> None:
        (self.member.kill if kill else self.member.stop)()


class CoordEnsembleHandle:
    """A running coord ensemble in the shape of real_zk.RealZooKeeperEnsemble."""

    def __init__(self, ensemble):
        self.ensemble = ensemble
        self.members = [_MemberHandle(m) for m in ensemble.members.values()]

    @property
    def connect_string(self) -> str:
        return self.ensemble.connect_string()

    def leader(self) -> _MemberHandle:
        lead = self.ensemble.leader()
        return next(h for h in self.members if h.member is lead)

    def stop(self) -> None:
        self.ensemble.stop()


def start_coord_ensemble(workdir: Path, n: int = 3, **kw) -> CoordEnsembleHandle:
    """An n-server coord ensemble from one zoo.cfg, serving, for suites written against ZooKeeper's."""
    from tests.support.ensemble import Ensemble
    ens = Ensemble(Path(workdir), n, kind="coord", **kw)
    ens.start()
    ens.wait_serving()
    return CoordEnsembleHandle(ens)

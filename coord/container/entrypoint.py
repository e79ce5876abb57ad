"""The container's entrypoint and health check (`coord container-entrypoint`, `coord container-healthcheck`).

Start: resolve bitnami's *_FILE variables, translate the environment (coord.container.env), write
zoo.cfg and myid where the image's contract says to, take a ZooKeeper data volume over on first start
(coord.container.takeover), then exec `coord serve --config ...` in the same process, so that the
container's stop signal reaches the server with no shell in between. Settings that must apply even to
a zoo.cfg the operator mounted (`-Dzookeeper.*` options, the takeover's data dirs) go into a derived
file beside the data, `<dataDir>/coord-zoo.cfg`; the operator's file is never changed.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Mapping

from coord.aio import zoocfg
from coord.container import env as cenv
from coord.container.takeover import TakeoverError, take_over, zookeeper_files

log = logging.getLogger("coord.container")

RUNTIME_CFG = "coord-zoo.cfg"
SERVE_ALIASES = ([], ["zkServer.sh", "start-foreground"], ["coord", "serve"])


class StartError(Exception):
    """The container cannot start; the message names the variable or path and what to do."""


def resolve_file_vars(environ: Mapping[str, str]) -> dict[str, str]:
    """bitnami's `<VAR>_FILE=/path`: the variable's value is read from the file (Docker secrets)."""
    env = dict(environ)
    known = cenv.BITNAMI_ONLY | cenv.SHARED_ZOO
    for name in sorted(environ):
        base = name[:-len("_FILE")]
        if name.endswith("_FILE") and base in known and name not in known:
            try:
                env[base] = Path(environ[name]).read_text().rstrip("\n")
            except OSError as e:
                raise StartError(f"{name}: cannot read {environ[name]} ({e.strerror})") from None
            del env[name]
    return env


def _writable_dir(d: Path, what: str) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StartError(f"{d}: cannot create the {what} ({e.strerror}); this container runs as uid "
                         f"{os.getuid()}") from None
    if not os.access(d, os.R_OK | os.W_OK | os.X_OK):
        raise StartError(f"{d}: the {what} is not writable by uid {os.getuid()} (it belongs to uid "
                         f"{d.stat().st_uid}); give the volume to uid 1000 or run the container as its owner")


def _write(path: Path, text: str) -> None:
    """Whole or not at all (a crash never leaves half a zoo.cfg or an empty myid)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise StartError(f"{path}: cannot write it ({e.strerror})") from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StartError(f"{path}: cannot read it ({e.strerror})") from None


def _is_empty(d: Path) -> bool:
    try:
        return not any(d.iterdir())
    except FileNotFoundError:
        return True
    except OSError as e:
        raise StartError(f"{d}: cannot read it ({e.strerror})") from None


def prepare(environ: Mapping[str, str]) -> tuple[Path, str | None]:
    """Write what the environment asks for; return the config `coord serve` is to start from, and the
    log level the environment names (if it does)."""
    env = resolve_file_vars(environ)
    lay = cenv.layout(env)
    conf, data = Path(lay.conf_file), Path(lay.data_dir)
    existing = cenv.Existing(zoo_cfg=_read(conf), myid=(data / "myid").exists(), data_dir_empty=_is_empty(data))
    plan = cenv.plan(env, existing)
    log.info("environment read as %s's (%s)", cenv.IMAGE_NAMES[lay.flavor], conf)
    for note in plan.notes:
        log.info("%s", note)
    _writable_dir(data, "data dir (ZOO_DATA_DIR)")
    if lay.data_log_dir is not None:
        _writable_dir(Path(lay.data_log_dir), "data log dir (ZOO_DATA_LOG_DIR)")
    if plan.zoo_cfg is not None:
        _writable_dir(conf.parent, "config dir (ZOO_CONF_DIR)")
        _write(conf, plan.zoo_cfg)
    if plan.myid is not None:
        _write(data / "myid", plan.myid.strip() + "\n")
    text = _read(conf) or ""
    try:
        cfg = zoocfg.parse(text, str(conf))
    except zoocfg.ConfigError as e:
        raise StartError(str(e)) from None
    overrides = list(plan.overrides)
    data_dir, log_dir = Path(cfg.data_dir), cfg.data_log_dir
    if zookeeper_files(data_dir) or zookeeper_files(log_dir):
        coord_dir, coord_log, _ = take_over(data_dir, log_dir)
        myid = data_dir / "myid"
        if myid.exists() and not (coord_dir / "myid").exists():
            _write(coord_dir / "myid", myid.read_text())
        overrides.append(("dataDir", str(coord_dir)))
        if log_dir is not None:
            overrides.append(("dataLogDir", str(coord_log or coord_dir)))
    if not overrides:
        return conf, plan.log_level
    runtime = data_dir / RUNTIME_CFG
    _write(runtime, cenv.with_overrides(text, overrides))
    return runtime, plan.log_level


def serve_config(environ: Mapping[str, str]) -> Path:
    """The config the entrypoint started the server from (for the health check)."""
    env = resolve_file_vars(environ)
    conf = Path(cenv.layout(env).conf_file)
    try:
        cfg = zoocfg.parse(conf.read_text(), str(conf))
    except OSError as e:
        raise StartError(f"{conf}: cannot read it ({e.strerror})") from None
    runtime = Path(cfg.data_dir) / RUNTIME_CFG
    return runtime if runtime.exists() else conf


def main(command: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, level = prepare(os.environ)
    except (cenv.EnvError, StartError, TakeoverError) as e:
        print(f"coord container-entrypoint: cannot start: {e}", file=sys.stderr)
        raise SystemExit(2)
    if list(command) in SERVE_ALIASES:
        argv = [sys.executable, "-m", "coord.cli", "serve", "--config", str(config)]
        if level:
            argv += ["--log-level", level]
    else:
        argv = list(command)   # like the images' `exec "$@"`: another command, after the config is written
    log.info("exec %s", " ".join(argv))
    sys.stderr.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"coord container-entrypoint: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
        raise SystemExit(127)


def healthcheck(timeout_s: float = 5.0) -> int:
    """0 if the server answers `ruok` with `imok` (or, with ruok not whitelisted, `srvr`); 1 otherwise.
    Never waits for a quorum: a pod's peers can resolve its name only once it is Ready."""
    from coord.bench.launch import four_letter
    try:
        cfg = zoocfg.load(serve_config(os.environ))
    except (cenv.EnvError, StartError, zoocfg.ConfigError) as e:
        print(f"unhealthy: {e}", file=sys.stderr)
        return 1
    host, port = cfg.client_port_address, cfg.client_port
    me = cfg.servers.get(cfg.myid) if cfg.myid is not None else None
    if me is not None and me.client_port is not None:   # an ensemble member's own `;[host:]port`
        host, port = me.client_host or host, me.client_port
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        out = four_letter(host, port, "ruok", timeout_s)
        if "not in the whitelist" in out:
            # srvr answers (with "not currently serving" while there is no quorum): the server runs
            out = "imok" if four_letter(host, port, "srvr", timeout_s).strip() else out
    except OSError as e:
        print(f"unhealthy: {host}:{port}: {e}", file=sys.stderr)
        return 1
    if out.strip() != "imok":
        print(f"unhealthy: {host}:{port} answered {out.strip()[:80]!r} to ruok", file=sys.stderr)
        return 1
    return 0

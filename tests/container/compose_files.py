"""Reading compose/ as Docker would, and running its ZooKeeper services as local processes.

`compose_config` is `docker compose config` where that client exists, else the YAML itself (anchors
resolved, environment values as the strings a container sees). `local_members` turns a file's zoo
services into environments for `coord container-entrypoint` on 127.0.0.1: each peer address and client
port moved to a free port, each named volume to a directory, the AdminServer off: the topology as
processes.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import yaml

from coord.container import env as cenv
from tests.support.coord_server import ROOT
from tests.support.real_zk import free_port

COMPOSE = ROOT / "compose"
FILES = {"coord.yml": cenv.OFFICIAL, "kafka-cp.yml": cenv.CONFLUENT, "kafka-bitnami.yml": cenv.BITNAMI,
         "kafka-zookeeper.yml": cenv.OFFICIAL}
IMAGE_LINE = re.compile(r"^x-zookeeper-image: &zookeeper-image (\S+)$", re.M)


def compose_client() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


def _env_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def compose_config(path: Path) -> dict:
    if compose_client():
        out = subprocess.run(["docker", "compose", "-f", str(path), "config", "--format", "json"],
                             capture_output=True, text=True, check=True, cwd=path.parent)
        doc = json.loads(out.stdout)
    else:
        doc = yaml.safe_load(path.read_text())
    for svc in doc["services"].values():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.partition("=")[::2] for e in env)
        svc["environment"] = {k: _env_value(v) for k, v in env.items()}
    return doc


def zoo_services(doc: dict) -> dict[str, dict]:
    return {n: s for n, s in doc["services"].items() if re.fullmatch(r"zoo\d+", n)}


def volume_mounts(svc: dict) -> dict[str, str]:
    """target -> named volume (short `name:/path` or long syntax)."""
    out = {}
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            source, _, target = v.partition(":")
            out[target.split(":")[0]] = source
        else:
            out[v["target"]] = v["source"]
    return out


def volume_for(svc: dict, path: PurePosixPath) -> tuple[str, PurePosixPath] | None:
    """The named volume holding `path` in this service, and path relative to its mount."""
    for target, source in volume_mounts(svc).items():
        t = PurePosixPath(target)
        if path == t or t in path.parents:
            return source, path.relative_to(t)
    return None


def local_members(doc: dict, tmp: Path) -> list[tuple[str, dict[str, str], int]]:
    """(service, environment, client port) for each zoo service, on 127.0.0.1 with dirs under tmp."""
    zoos = zoo_services(doc)
    ports = {n: (free_port(), free_port(), free_port()) for n in zoos}   # client, quorum, election
    out = []
    for name, svc in zoos.items():
        env = dict(svc["environment"])
        lay = cenv.layout(env)

        def peer(host: str) -> str:
            c, q, e = ports[host]
            return f"127.0.0.1:{q}:{e}"
        if lay.flavor == cenv.OFFICIAL:
            toks = []
            for tok in env["ZOO_SERVERS"].split():
                key, _, spec = tok.partition("=")
                host = spec.split(":")[0]
                toks.append(f"{key}={peer(host)};{ports[host][0]}")
            env["ZOO_SERVERS"] = " ".join(toks)
        elif lay.flavor == cenv.CONFLUENT:
            env["ZOOKEEPER_SERVERS"] = ";".join(peer(s.split(":")[0]) for s in env["ZOOKEEPER_SERVERS"].split(";"))
            env["ZOOKEEPER_CLIENT_PORT"] = str(ports[name][0])
        else:
            raise ValueError(f"{name}: bitnami's one client port for all servers cannot share 127.0.0.1")
        # one host: the AdminServers (8080 in every container) would collide, and other tests use 8080
        env["ZOOKEEPER_ADMIN_ENABLE_SERVER" if lay.flavor == cenv.CONFLUENT else "ZOO_ADMINSERVER_ENABLED"] = "false"
        base = tmp / name
        env["ZOO_CONF_DIR"] = str(base / "conf")
        for var, p in (("ZOO_DATA_DIR", lay.data_dir), ("ZOO_DATA_LOG_DIR", lay.data_log_dir)):
            if p is not None:
                vol, rel = volume_for(svc, p)
                env[var] = str(base / vol / rel)
        out.append((name, env, ports[name][0]))
    return out

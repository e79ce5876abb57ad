"""`coord ensemble add` / `coord ensemble remove N`: grow and shrink a running local ensemble.

They follow ZooKeeper's manual procedure (docs/operations.md): a new server is started with a zoo.cfg
listing the committed configuration (read from /zookeeper/config of a serving member) plus itself,
with an id above every member's, so it follows without a vote; once it serves, an incremental
reconfig issued as `super` (the password `coord ensemble` keeps in <dir>/super.password) adds it.
Removing is `reconfig -remove N` as super, then SIGTERM to that server's process.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import click

from coord.ensemble_dirs import PID_FILE, member_dirs, stop_server

PASSWORD_FILE = "super.password"


def super_credentials(root: Path) -> str:
    pw = root / PASSWORD_FILE
    if not pw.exists():
        raise click.ClickException(f"{pw} is missing: was this ensemble started by `coord ensemble`?")
    return f"super:{pw.read_text().strip()}"


def read_cfg(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def server_lines(config: str) -> dict[int, str]:
    """/zookeeper/config's `server.N=...` lines by id (the `version=` line is not part of a zoo.cfg)."""
    return {int(k[len("server."):]): f"{k}={v}" for k, v in
            (line.split("=", 1) for line in config.splitlines() if line.startswith("server."))}


def client_address(line: str) -> str:
    return line.split(";", 1)[1] if ";" in line else ""


def connect_string(config: str) -> str:
    return ",".join(client_address(line) for _, line in sorted(server_lines(config).items()))


def _client(hosts: str, auth: str | None = None):
    import logging
    from kazoo.client import KazooClient
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)   # removed members refuse: not news to the user
    return KazooClient(hosts=hosts, timeout=10, auth_data=[("digest", auth)] if auth else None)


def committed_config(root: Path, timeout: float = 30.0) -> str:
    """The committed configuration, read (after a sync) through any serving member under root."""
    hosts = ",".join(f"127.0.0.1:{read_cfg(d / 'zoo.cfg')['clientPort']}" for d in member_dirs(root).values())
    if not hosts:
        raise click.ClickException(f"no server under {root}: start one with `coord ensemble` first")
    c = _client(hosts)
    try:
        c.start(timeout=timeout)
    except Exception as e:
        raise click.ClickException(f"no serving member among {hosts}: {e}")
    try:
        c.sync("/zookeeper/config")
        return c.get("/zookeeper/config")[0].decode()
    finally:
        c.stop()
        c.close()


def reconfig(hosts: str, auth: str, joining: str | None, leaving: str | None, timeout: float = 90.0) -> str:
    """Send the reconfig until it is answered; a lost reply is settled by reading the config (the
    change may have committed), NEWCONFIGNOQUORUM (a joiner not yet synced) by trying again."""
    from kazoo.exceptions import ConnectionLoss, NewConfigNoQuorumError
    deadline = time.monotonic() + timeout
    while True:
        c = _client(hosts, auth)
        try:
            c.start(timeout=30)
            try:
                return c.reconfig(joining, leaving, None)[0].decode()
            except NewConfigNoQuorumError:
                pass
            except ConnectionLoss:
                c.retry(c.sync, "/zookeeper/config")
                text = c.retry(c.get, "/zookeeper/config")[0].decode()
                ids = server_lines(text)
                if (joining is None or int(joining.split("=")[0][len("server."):]) in ids) and \
                        (leaving is None or int(leaving) not in ids):
                    return text
        except Exception as e:
            if time.monotonic() > deadline:
                raise click.ClickException(f"reconfig failed: {e!r}")
        finally:
            c.stop()
            c.close()
        if time.monotonic() > deadline:
            raise click.ClickException(f"reconfig joining={joining} leaving={leaving} not done in {timeout:.0f}s")
        time.sleep(0.5)


def free_ports(taken: set[int], start: int) -> tuple[int, int, int]:
    """(client, quorum, election) at the `coord ensemble` offsets (+707, +1707), all free."""
    from coord.ensemble import port_in_use
    for client in range(start, start + 500):
        trio = (client, client + 707, client + 1707)
        if not any(p in taken or port_in_use(p) for p in trio):
            return trio
    raise click.ClickException(f"no free ports from {start}")


def wait_mode(port: int, modes: tuple[str, ...], timeout: float, proc: subprocess.Popen) -> str:
    from coord.ensemble import mode_of
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = asyncio.run(mode_of(port))
        if m in modes:
            return m
        if proc.poll() is not None:
            raise click.ClickException(f"the new server exited with status {proc.returncode}")
        time.sleep(0.2)
    raise click.ClickException(f"the new server on port {port} did not follow within {timeout:.0f}s")


@click.command("add")
@click.option("--dir", "root", type=click.Path(file_okay=False), default=".coord", show_default=True)
@click.option("--wait", type=float, default=90.0, show_default=True, help="Seconds to wait for each step.")
def add_command(root, wait) -> None:
    """Start one more server and add it to the running ensemble (reconfig as super)."""
    from coord.ensemble import server_command, Planned
    root_path = Path(root).resolve()
    auth = super_credentials(root_path)
    config = committed_config(root_path)
    members = server_lines(config)
    dirs = member_dirs(root_path)
    sid = max(set(members) | set(dirs)) + 1
    template = read_cfg(dirs[min(d for d in dirs if d in members) if set(dirs) & set(members) else min(dirs)]
                        / "zoo.cfg")
    taken = {int(p) for line in members.values() for p in
             line.replace(";", ":").split("=", 1)[1].split(":") if p.isdigit()}
    client, quorum, election = free_ports(taken, max(int(client_address(x).rsplit(":", 1)[1])
                                                    for x in members.values()) + 1)
    s = Planned(sid, client, quorum, election, root_path / f"s{sid}")
    data = s.dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "myid").write_text(f"{sid}\n")
    me = f"server.{sid}=127.0.0.1:{quorum}:{election}:participant;127.0.0.1:{client}"
    keep = {k: v for k, v in template.items() if not k.startswith("server.")}
    keep.update({"dataDir": str(data), "clientPort": str(client), "reconfigEnabled": "true"})
    s.config.write_text("# written by `coord ensemble add`: the committed configuration plus this server\n"
                        + "".join(f"{k}={v}\n" for k, v in keep.items())
                        + "".join(f"{line}\n" for _, line in sorted(members.items())) + me + "\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(s.dir / "server.log", "ab") as log:
        proc = subprocess.Popen(server_command(s, "coord", "info"), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=s.dir, env=env, start_new_session=True)
    (s.dir / PID_FILE).write_text(f"{proc.pid}\n")
    try:
        wait_mode(client, ("follower", "observer", "leader"), wait, proc)
        hosts = ",".join(client_address(x) for x in members.values())
        new = reconfig(hosts, auth, me, None, wait)
    except BaseException:
        stop_server(s.dir)
        raise
    click.echo(f"added server {sid} (client 127.0.0.1:{client}, log {s.dir / 'server.log'})")
    click.echo(f"connect string: {connect_string(new)}")


@click.command("remove")
@click.argument("sid", type=int)
@click.option("--dir", "root", type=click.Path(file_okay=False), default=".coord", show_default=True)
@click.option("--wait", type=float, default=90.0, show_default=True, help="Seconds to wait for the reconfig.")
def remove_command(sid, root, wait) -> None:
    """Remove server SID from the running ensemble (reconfig as super), then stop its process."""
    root_path = Path(root).resolve()
    auth = super_credentials(root_path)
    members = server_lines(committed_config(root_path))
    if sid not in members:
        raise click.ClickException(f"server {sid} is not a member (members: {sorted(members)})")
    if len(members) == 1:
        raise click.ClickException("cannot remove the last member")
    hosts = ",".join(client_address(x) for k, x in members.items() if k != sid)
    new = reconfig(hosts, auth, None, str(sid), wait)
    sdir = root_path / f"s{sid}"
    stopped = stop_server(sdir)
    click.echo(f"removed server {sid}" + ("" if stopped else " (no running process found for it)"))
    click.echo(f"connect string: {connect_string(new)}")

"""`coord ensemble roll`: restart every server of a running local ensemble, one at a time.

Followers (and observers) first, the leader last, each back and synced (serving as follower or
observer again) before the next is stopped; the ensemble must have a leader and every other member
serving before each step. A server is stopped with SIGTERM, so the leader, last, hands its
leadership to an up-to-date follower before it exits (docs/zab.md, "Graceful leader handoff"):
clients see no election. Restarted servers run detached, their output in <dir>/sN/server.log, as
`coord ensemble add` starts them; the foreground `coord ensemble` still stops them on Ctrl-C.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import click

from coord.ensemble_dirs import PID_FILE, member_dirs, stop_server
from coord.ensemble_members import committed_config, read_cfg, server_lines

ROLLING = "rolling"        # marker file in a server's dir while `roll` restarts it


def modes(ports: dict[int, int]) -> dict[int, str | None]:
    from coord.ensemble import mode_of

    async def all_modes():
        return dict(zip(ports, await asyncio.gather(*(mode_of(p) for p in ports.values()))))
    return asyncio.run(all_modes())


def wait_ensemble(ports: dict[int, int], timeout: float, what: str) -> dict[int, str | None]:
    """Until one leader and every listed server serving (leader, follower or observer)."""
    deadline = time.monotonic() + timeout
    m: dict[int, str | None] = {}
    while time.monotonic() < deadline:
        m = modes(ports)
        if list(m.values()).count("leader") == 1 and all(x in ("leader", "follower", "observer") for x in m.values()):
            return m
        time.sleep(0.1)
    raise click.ClickException(f"{what}: not serving after {timeout:.0f}s (modes: {m})")


def restart(sdir: Path, sid: int, client_port: int, log_level: str = "info", engine: str = "coord") -> subprocess.Popen:
    from coord.ensemble import Planned, server_command
    (sdir / ROLLING).write_text("")      # the foreground `coord ensemble` says "restarted", not "removed"
    stop_server(sdir)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    s = Planned(sid, client_port, 0, 0, sdir)
    with open(sdir / "server.log", "ab") as log:
        env.pop("JAVA_TOOL_OPTIONS", None)
        proc = subprocess.Popen(server_command(s, engine, log_level), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=sdir, env=env, start_new_session=True)
    (sdir / PID_FILE).write_text(f"{proc.pid}\n")
    return proc


def roll(root: Path, wait: float, echo=click.echo, engine: str = "coord") -> list[tuple[int, str, float]]:
    """Restart every member under root; returns (sid, role it had, seconds until it served again)."""
    members = server_lines(committed_config(root))
    dirs = {sid: d for sid, d in member_dirs(root).items() if sid in members}
    if not dirs:
        raise click.ClickException(f"no member of the committed configuration has a directory under {root}")
    ports = {sid: int(read_cfg(d / "zoo.cfg")["clientPort"]) for sid, d in dirs.items()}
    current = wait_ensemble(ports, wait, "before the roll")
    order = sorted((s for s, m in current.items() if m != "leader")) + [s for s, m in current.items() if m == "leader"]
    done = []
    for sid in order:
        role = modes({sid: ports[sid]})[sid] or "?"
        echo(f"restarting server {sid} ({role})")
        t0 = time.monotonic()
        proc = restart(dirs[sid], sid, ports[sid], engine=engine)
        deadline = time.monotonic() + wait
        while True:
            m = modes({sid: ports[sid]})[sid]
            if m in ("follower", "observer", "leader"):
                break
            if proc.poll() is not None:
                raise click.ClickException(f"server {sid} exited with status {proc.returncode}; see "
                                           f"{dirs[sid] / 'server.log'}")
            if time.monotonic() > deadline:
                raise click.ClickException(f"server {sid} not serving {wait:.0f}s after its restart")
            time.sleep(0.1)
        (dirs[sid] / ROLLING).unlink(missing_ok=True)
        after = wait_ensemble(ports, wait, f"after restarting server {sid}")
        took = time.monotonic() - t0
        leader = next(s for s, x in after.items() if x == "leader")
        echo(f"server {sid} is back as {after[sid]} in {took:.1f}s (leader: {leader})")
        done.append((sid, role, took))
    return done


@click.command("roll")
@click.option("--dir", "root", type=click.Path(file_okay=False), default=".coord", show_default=True)
@click.option("--wait", type=float, default=90.0, show_default=True, help="Seconds to wait for each step.")
@click.option("--engine", type=click.Choice(["coord", "zookeeper"]), default="coord", hidden=True,
              help="What the ensemble runs (`coord ensemble --engine`): the same roll on real ZooKeeper.")
def roll_command(root, wait, engine) -> None:
    """Restart every server (followers first, the leader last, which hands over its leadership)."""
    done = roll(Path(root).resolve(), wait, engine=engine)
    click.echo(f"rolled {len(done)} servers")

"""`coord ensemble`: a local N-server ensemble in one command, for trying coord out.

It writes one zoo.cfg per server under ./.coord/ (ZooKeeper's format, the same `server.N` lines in
each; only dataDir differs, and each dataDir holds its myid), starts every server as its own
`coord serve` process, streams their logs with a coloured prefix per server, prints the connect
string once a leader is elected and every server serves, and stops them all on Ctrl-C. Data is kept
between runs (`--fresh` wipes it), as a real ensemble keeps its dataDir.

Membership can change while it runs: its zoo.cfg files enable reconfig and name a super digest whose
password is kept in <dir>/super.password (mode 600), which `coord ensemble add` and `coord ensemble
remove N` (coord/ensemble_members.py) use; each running server's pid is in its dir's coord.pid.

Ports follow ZooKeeper's conventions from the base port: clients on base, base+1, ...; quorum on
2888+i and election on 3888+i when base is 2181 (both shift with the base).
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

ZK_JAR = Path("/usr/share/java/zookeeper.jar")              # Debian's zookeeper package
ZK_CONF_EXAMPLE = Path("/etc/zookeeper/conf_example")
COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta",
           "bright_green"]


@dataclass
class Planned:
    sid: int
    client_port: int
    quorum_port: int
    election_port: int
    dir: Path

    @property
    def config(self) -> Path:
        return self.dir / "zoo.cfg"


def plan(n: int, base_port: int, root: Path, host: str = "127.0.0.1") -> list[Planned]:
    return [Planned(i, base_port + i - 1, base_port + 707 + i - 1, base_port + 1707 + i - 1, root / f"s{i}")
            for i in range(1, n + 1)]


def super_password(root: Path) -> str:
    """The password of `super` for this ensemble dir, made on first use and readable by its owner only."""
    import secrets
    path = root / "super.password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(18) + "\n")
    return path.read_text().strip()


def write_configs(servers: list[Planned], *, tick_ms: int, force_sync: bool, engine: str,
                  host: str = "127.0.0.1", membership: bool = False) -> None:
    """membership: enable reconfig with a super digest (`coord ensemble add/remove`)."""
    from coord.core.acl import digest_id
    lines = [f"server.{s.sid}={host}:{s.quorum_port}:{s.election_port};{host}:{s.client_port}" for s in servers]
    for s in servers:
        data = s.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        (data / "myid").write_text(f"{s.sid}\n")
        cfg = [
            "# written by `coord ensemble`: ZooKeeper's zoo.cfg format",
            f"tickTime={tick_ms}",
            "initLimit=10",
            "syncLimit=5",
            f"dataDir={data.resolve()}",
            f"clientPort={s.client_port}",
            f"clientPortAddress={host}",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
            "standaloneEnabled=false",
            f"forceSync={'yes' if force_sync else 'no'}",
        ]
        if engine == "zookeeper":
            cfg.append("reconfigEnabled=false")
        elif membership:
            cfg += ["reconfigEnabled=true",
                    f"DigestAuthenticationProvider.superDigest={digest_id('super:' + super_password(s.dir.parent))}"]
        s.config.write_text("\n".join(cfg + lines) + "\n")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def server_command(s: Planned, engine: str, log_level: str) -> list[str]:
    if engine == "coord":
        return [sys.executable, "-m", "coord.cli", "serve", "--config", str(s.config), "--log-level", log_level]
    conf = s.dir / "conf"
    conf.mkdir(exist_ok=True)
    if (ZK_CONF_EXAMPLE / "log4j.properties").exists():
        shutil.copy(ZK_CONF_EXAMPLE / "log4j.properties", conf / "log4j.properties")
    return ["java", "-Xmx256m", "-Dzookeeper.root.logger=INFO,CONSOLE", "-cp", f"{conf}:{ZK_JAR}",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(s.config)]


async def four_letter(port: int, word: str, host: str = "127.0.0.1", timeout: float = 1.0) -> str:
    r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        w.write(word.encode())
        return (await asyncio.wait_for(r.read(), timeout)).decode(errors="replace")
    finally:
        w.close()


async def mode_of(port: int) -> str | None:
    try:
        out = await four_letter(port, "srvr")
    except (OSError, asyncio.TimeoutError):
        return None
    for line in out.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


class Runner:
    def __init__(self, servers: list[Planned], engine: str, log_level: str, console, quiet: bool = False):
        self.servers = servers
        self.engine = engine
        self.log_level = log_level
        self.console = console
        self.quiet = quiet
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.pumps: list[asyncio.Task] = []
        self.stopping = False
        self.exited: set[int] = set()  # servers that died under us (a quorum needs a majority alive)

    def say(self, text: str, style: str = "bold") -> None:
        self.console.print(text, style=style, highlight=False)

    async def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.pop("JAVA_TOOL_OPTIONS", None)
        for s in self.servers:
            p = await asyncio.create_subprocess_exec(
                *server_command(s, self.engine, self.log_level), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, cwd=s.dir, env=env, start_new_session=True)
            self.procs[s.sid] = p
            (s.dir / "coord.pid").write_text(f"{p.pid}\n")
            self.pumps.append(asyncio.get_running_loop().create_task(self._pump(s, p)))

    async def _pump(self, s: Planned, p: asyncio.subprocess.Process) -> None:
        from rich.text import Text
        colour = COLOURS[(s.sid - 1) % len(COLOURS)]
        prefix = Text(f"s{s.sid} | ", style=f"bold {colour}")
        while True:
            line = await p.stdout.readline()
            if not line:
                break
            if not self.quiet:
                self.console.print(prefix + Text(line.decode(errors="replace").rstrip("\n")), highlight=False)
        rc = await p.wait()
        if not self.stopping and not (s.dir / "coord.pid").exists():
            self.say(f"server {s.sid} stopped (removed from the ensemble by `coord ensemble remove`)")
        elif not self.stopping:
            self.exited.add(s.sid)
            n, tolerated = len(self.servers), (len(self.servers) - 1) // 2
            if len(self.exited) <= tolerated:
                fate = f"the others keep running (an ensemble of {n} survives {tolerated} down)"
            else:
                fate = (f"{len(self.exited)} of {n} are down, more than the {tolerated} an ensemble of {n} "
                        f"survives: the rest stop serving until a quorum is back (Ctrl-C and rerun; data is kept)")
            self.say(f"server {s.sid} exited with status {rc}; {fate}", "bold red")

    async def wait_serving(self, timeout: float) -> dict[int, str]:
        deadline = time.monotonic() + timeout
        modes: dict[int, str | None] = {}
        while time.monotonic() < deadline:
            modes = {s.sid: await mode_of(s.client_port) for s in self.servers}
            if list(modes.values()).count("leader") == 1 and all(m in ("leader", "follower", "observer")
                                                                 for m in modes.values()):
                return modes
            if all(p.returncode is not None for p in self.procs.values()):
                raise click.ClickException("every server exited; see the log lines above")
            await asyncio.sleep(0.1)
        raise click.ClickException(f"no serving ensemble after {timeout:.0f}s (modes: {modes})")

    async def stop(self) -> None:
        """Stop every server, those `coord ensemble add` started later under the same dir too."""
        from coord.ensemble_dirs import member_dirs, stop_server
        self.stopping = True
        mine = {s.sid for s in self.servers}
        if self.servers:
            for sid, d in member_dirs(self.servers[0].dir.parent).items():
                if sid not in mine:
                    await asyncio.get_running_loop().run_in_executor(None, stop_server, d)
        for p in self.procs.values():
            if p.returncode is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for p in self.procs.values():
            try:
                await asyncio.wait_for(p.wait(), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                p.kill()
                await p.wait()
        for t in self.pumps:
            try:
                await asyncio.wait_for(t, 2)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        for s in self.servers:
            (s.dir / "coord.pid").unlink(missing_ok=True)


async def run(servers: list[Planned], engine: str, log_level: str, wait: float, quiet: bool,
              exit_when_ready: bool = False) -> int:
    from rich.console import Console
    from rich.table import Table
    console = Console(stderr=False, soft_wrap=True)
    runner = Runner(servers, engine, log_level, console, quiet)
    await runner.start()
    try:
        modes = await runner.wait_serving(wait)
        connect = ",".join(f"127.0.0.1:{s.client_port}" for s in servers)
        table = Table(title=f"coord ensemble of {len(servers)}", title_style="bold")
        for col in ("server", "mode", "client", "quorum", "election", "data"):
            table.add_column(col)
        for s in servers:
            m = modes[s.sid]
            table.add_row(f"s{s.sid}", f"[bold green]{m}[/]" if m == "leader" else m, f"127.0.0.1:{s.client_port}",
                          str(s.quorum_port), str(s.election_port), os.path.relpath(s.dir / "data"))
        console.print(table)
        console.print(f"[bold]connect string:[/] [bold green]{connect}[/]")
        # Full paths: zkCli.sh is not on PATH (Debian) and kazoo lives in this virtualenv.
        python = os.path.relpath(sys.executable)
        python = sys.executable if python.startswith("..") else python
        console.print(f"  try: [cyan]/usr/share/zookeeper/bin/zkCli.sh -server {connect}[/]\n"
                      f"   or: [cyan]{python} -c \"from kazoo.client import KazooClient; c=KazooClient('{connect}'); "
                      f"c.start(); print(c.get_children('/'))\"[/]\n"
                      f"   or: [cyan]echo mntr | nc 127.0.0.1 {servers[0].client_port}[/]")
        console.print("[dim]Ctrl-C stops every server (data is kept; --fresh starts empty)[/]")
        if quiet:
            print(f"CONNECT {connect}", flush=True)
        if exit_when_ready:
            return 0
        await asyncio.gather(*(p.wait() for p in runner.procs.values()))
        console.print("[bold red]every server has exited[/]")
        return 1
    finally:
        await runner.stop()
        console.print("[bold]stopped[/]")


@click.group("ensemble", invoke_without_command=True)
@click.option("-n", "--servers", "n", type=click.IntRange(1, 9), default=3, show_default=True,
              help="How many servers (an odd number survives the most failures).")
@click.option("--base-port", type=int, default=2181, show_default=True,
              help="First client port; the others follow it. Quorum/election ports: 2888+i / 3888+i at the default base.")
@click.option("--dir", "root", type=click.Path(file_okay=False), default=".coord", show_default=True,
              help="Where the generated zoo.cfg files and data dirs go.")
@click.option("--fresh", is_flag=True, help="Delete the data of a previous run first.")
@click.option("--tick-time", "tick_ms", type=int, default=2000, show_default=True, help="tickTime (ms).")
@click.option("--no-fsync", is_flag=True, help="forceSync=no: faster, not durable (demos and benchmarks).")
@click.option("--log-level", default="info", show_default=True)
@click.option("--quiet", is_flag=True, help="Do not stream the servers' logs.")
@click.option("--wait", type=float, default=60.0, show_default=True, help="Seconds to wait for a serving ensemble.")
@click.option("--engine", type=click.Choice(["coord", "zookeeper"]), default="coord", hidden=True,
              help="Run Apache ZooKeeper's servers instead (tests of this command; needs the zookeeper package).")
@click.option("--exit-when-ready", is_flag=True, hidden=True)
@click.pass_context
def ensemble_command(ctx, n, base_port, root, fresh, tick_ms, no_fsync, log_level, quiet, wait, engine,
                     exit_when_ready) -> None:
    """Run a local ensemble of N coord servers (separate processes) until Ctrl-C.

    `coord ensemble add` / `coord ensemble remove N` grow and shrink it while it runs."""
    if ctx.invoked_subcommand is not None:
        return
    from coord.aio.runloop import run as _run
    root_path = Path(root).resolve()
    servers = plan(n, base_port, root_path)
    busy = [p for s in servers for p in (s.client_port, s.quorum_port, s.election_port) if port_in_use(p)]
    if busy:
        raise click.ClickException(f"port(s) {', '.join(map(str, busy))} already in use "
                                   f"(another ensemble or ZooKeeper running?); try --base-port")
    if fresh and root_path.exists():
        for s in servers:
            shutil.rmtree(s.dir, ignore_errors=True)
    root_path.mkdir(parents=True, exist_ok=True)
    write_configs(servers, tick_ms=tick_ms, force_sync=not no_fsync, engine=engine, membership=True)
    rc = [0]

    async def main():
        rc[0] = await run(servers, engine, log_level, wait, quiet, exit_when_ready)
    _run(main)
    if rc[0]:
        sys.exit(rc[0])

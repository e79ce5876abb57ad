"""`coord kafka up`: a local ensemble plus N real Kafka 3.9 brokers in one command, Ctrl-C stops all;
`coord kafka tool NAME ...`: Kafka's own command-line tools from the same jars.

The ensemble is `coord ensemble`'s (coord/ensemble.py: same zoo.cfg files, same launcher), or Apache
ZooKeeper 3.8 with --zookeeper for comparison; the brokers share the chroot /kafka. Everything lives
under one folder (--dir): the ensemble's data dirs, each broker's log dir and server.log.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import click

from coord.kafka import tools

TOOLS = {
    "topics": tools.TOPICS,
    "configs": tools.CONFIGS,
    "acls": tools.ACLS,
    "reassign-partitions": tools.REASSIGN,
    "leader-election": tools.LEADER_ELECTION,
    "console-producer": "kafka.tools.ConsoleProducer",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "zookeeper-shell": tools.ZK_SHELL,
    "producer-perf-test": tools.PRODUCER_PERF,
    "consumer-perf-test": tools.CONSUMER_PERF,
    "verifiable-producer": tools.VERIFIABLE_PRODUCER,
    "verifiable-consumer": tools.VERIFIABLE_CONSUMER,
}


@click.group("kafka")
def kafka_group() -> None:
    """Real Kafka 3.9 brokers (ZooKeeper mode) on a local ensemble."""


def _require_libs() -> None:
    from coord.kafka.libs import missing_reason
    reason = missing_reason()
    if reason:
        raise click.ClickException(f"cannot run Kafka: {reason}")


@kafka_group.command("up")
@click.option("-n", "--brokers", "n_brokers", type=click.IntRange(1, 9), default=3, show_default=True,
              help="How many brokers.")
@click.option("--servers", "n_servers", type=click.IntRange(1, 9), default=3, show_default=True,
              help="How many ensemble servers.")
@click.option("--base-port", type=int, default=2181, show_default=True, help="First ensemble client port.")
@click.option("--kafka-port", type=int, default=9092, show_default=True, help="First broker port.")
@click.option("--dir", "root", type=click.Path(file_okay=False), default=".coord-kafka", show_default=True,
              help="Where the ensemble's and the brokers' configs, data and logs go.")
@click.option("--fresh", is_flag=True, help="Delete the data of a previous run first.")
@click.option("--zookeeper", is_flag=True, help="Run Apache ZooKeeper 3.8 (Debian's zookeeper package) instead of coord.")
@click.option("--wait", type=float, default=180.0, show_default=True,
              help="Seconds to wait for the ensemble, then for every broker to register.")
@click.option("--verbose", is_flag=True, help="Stream the ensemble servers' logs.")
def up_command(n_brokers, n_servers, base_port, kafka_port, root, fresh, zookeeper, wait, verbose) -> None:
    """Run an ensemble and N Kafka brokers until Ctrl-C."""
    from coord.aio.runloop import run as _run
    from coord.ensemble import ZK_JAR, plan, port_in_use, write_configs
    _require_libs()
    engine = "zookeeper" if zookeeper else "coord"
    if zookeeper and not ZK_JAR.exists():
        raise click.ClickException(f"--zookeeper needs Apache ZooKeeper ({ZK_JAR}): apt-get install zookeeper")
    root_path = Path(root).resolve()
    servers = plan(n_servers, base_port, root_path / "ensemble")
    kafka_ports = [kafka_port + i for i in range(n_brokers)]
    busy = [p for s in servers for p in (s.client_port, s.quorum_port, s.election_port) if port_in_use(p)]
    busy += [p for p in kafka_ports if port_in_use(p)]
    if busy:
        raise click.ClickException(f"port(s) {', '.join(map(str, busy))} already in use "
                                   f"(another ensemble or Kafka running?); try --base-port / --kafka-port")
    marker = root_path / "engine"
    if fresh and root_path.exists():
        shutil.rmtree(root_path)
    if marker.exists() and marker.read_text().strip() != engine:
        raise click.ClickException(f"{root} holds a {marker.read_text().strip()} cluster's data; "
                                   f"use --fresh or another --dir")
    root_path.mkdir(parents=True, exist_ok=True)
    marker.write_text(engine + "\n")
    write_configs(servers, tick_ms=2000, force_sync=True, engine=engine)
    rc = [0]

    async def main():
        rc[0] = await _up(servers, engine, n_brokers, kafka_ports, root_path, wait, verbose)
    _run(main)
    if rc[0]:
        sys.exit(rc[0])


async def _up(servers, engine, n_brokers, kafka_ports, root: Path, wait: float, verbose: bool) -> int:
    from rich.console import Console

    from coord.ensemble import Runner
    from coord.kafka.cluster import KafkaCluster
    from coord.kafka.libs import versions
    console = Console(soft_wrap=True, highlight=False)
    runner = Runner(servers, engine, "info", console, quiet=not verbose)
    zk_hosts = ",".join(f"127.0.0.1:{s.client_port}" for s in servers)
    cluster = KafkaCluster(root / "kafka", zk_hosts, n_brokers, ports=kafka_ports)
    loop = asyncio.get_running_loop()
    await runner.start()
    try:
        await runner.wait_serving(min(wait, 60.0))
        v = versions()
        console.print(f"[bold]{engine} ensemble serving on {zk_hosts}; starting {n_brokers} Kafka {v['kafka']} "
                      f"broker(s) (ZooKeeper client {v['zookeeper_client']}), logs in "
                      f"{os.path.relpath(cluster.workdir)}/broker*/logs[/]")
        for b in cluster.brokers.values():
            b.start()
        try:
            await loop.run_in_executor(None, cluster.wait_ready, wait)
        except Exception as e:  # a broker that exits, or the wait running out
            console.print(f"[bold red]brokers not ready: {e}[/]")
            return 1
        epochs = await loop.run_in_executor(None, cluster.broker_epochs)
        controller = await loop.run_in_executor(None, cluster.controller)
        for i, b in cluster.brokers.items():
            console.print(f"  broker {i}: {b.bootstrap}  epoch {epochs.get(i)}"
                          + ("  [green](controller)[/]" if i == controller else ""))
        console.print(f"[bold]bootstrap servers:[/] [bold green]{cluster.bootstrap_servers}[/]")
        console.print(f"[bold]ZooKeeper connect:[/] [bold green]{cluster.zk_connect}[/]")
        console.print(f"  try: [cyan]coord kafka tool topics --bootstrap-server {cluster.bootstrap_servers} "
                      f"--create --topic demo[/]\n"
                      f"  then: [cyan]coord kafka tool console-producer --bootstrap-server "
                      f"{cluster.bootstrap_servers} --topic demo[/]")
        console.print("[dim]Ctrl-C stops every broker, then the ensemble (data is kept; --fresh starts empty)[/]")
        print(f"BOOTSTRAP {cluster.bootstrap_servers}\nZKCONNECT {cluster.zk_connect}", flush=True)
        while True:
            dead = [i for i, b in cluster.brokers.items() if not b.alive]
            if dead:
                console.print(f"[bold red]broker(s) {dead} exited; see their server.log. Stopping.[/]")
                return 1
            if all(p.returncode is not None for p in runner.procs.values()):
                console.print("[bold red]every ensemble server has exited[/]")
                return 1
            await asyncio.sleep(1.0)
    finally:
        console.print("[bold]stopping the brokers (controlled shutdown), then the ensemble[/]")
        await asyncio.shield(loop.run_in_executor(None, cluster.stop))
        await runner.stop()
        console.print("[bold]stopped[/]")


@kafka_group.command("tool", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name", type=click.Choice(sorted(TOOLS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def tool_command(name, args) -> None:
    """Run one of Kafka's tools (kafka-NAME.sh) from the same jars, e.g. `topics --list --bootstrap-server ...`."""
    _require_libs()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"coord-kafka-tools-{os.getuid()}"
    if name == "zookeeper-shell":  # zookeeper-shell.sh's own first argument
        args = ("-server", *args)
    cmd = tools.tool_command(TOOLS[name], list(args), workdir)
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)
    os.execvpe(cmd[0], cmd, env)

"""The `coord` command: serve, ensemble, data tools, bench, compat."""
from __future__ import annotations

import asyncio
import errno
import logging
import signal
import sys
from pathlib import Path

import click

from coord import __version__


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _run(coro_factory) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(coro_factory())
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, main.cancel)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()


class _LazyGroup(click.Group):
    """Commands whose modules are heavy (bench, ensemble, data tools) are registered on first use, so
    `coord serve` starts without importing them (a restarted server's start counts toward catch-up)."""

    registrars: list = []

    def _register_all(self) -> None:
        while self.registrars:
            self.registrars.pop(0)()

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None and self.registrars:
            self._register_all()
            cmd = super().get_command(ctx, name)
        return cmd

    def list_commands(self, ctx):
        self._register_all()
        return super().list_commands(ctx)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="coord")
def main() -> None:
    """coord: a ZooKeeper-compatible coordination service."""


@main.command()
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False), default=None,
              help="zoo.cfg (ZooKeeper's format). Without it: standalone on 127.0.0.1:2181, data in ./coord-data.")
@click.option("--port", type=int, default=None, help="Override clientPort.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Override dataDir.")
@click.option("--log-level", default="info", show_default=True)
def serve(config_path, port, data_dir, log_level) -> None:
    """Run one coord server (on the environment's server runtime, if it names one: see coord.runtime)."""
    from coord.runtime import exec_server_runtime
    if sys.argv[1:2] == ["serve"]:  # a real command line (not click's test runner inside another program)
        exec_server_runtime(sys.argv[1:])
    from coord.aio import zoocfg
    _setup_logging(log_level)
    try:
        if config_path:
            cfg = zoocfg.load(config_path, data_dir)
        else:
            cfg = zoocfg.ServerConfig(client_port_address="127.0.0.1", data_dir=Path("coord-data"))
    except zoocfg.ConfigError as e:
        raise click.ClickException(str(e))
    for w in cfg.warnings:
        logging.getLogger("coord.config").warning("%s", w)
    if port is not None:
        cfg.client_port = port
    if data_dir is not None:
        cfg.data_dir = Path(data_dir)  # also read by load() before myid; here for the no-config case
    from coord.aio.node import run_node
    try:
        _run(lambda: run_node(cfg))
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        # A busy port is an operator's mistake (often a `coord ensemble` still running), not a crash.
        raise click.ClickException(f"cannot start: {e} (is another server running? see `ss -ltnp`)")


@main.command("container-entrypoint", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def container_entrypoint(command) -> None:
    """Start as the ZooKeeper Docker images do: their variables -> zoo.cfg and myid, a ZooKeeper data
    volume taken over on first start, then exec `coord serve` (or COMMAND). See docs/docker.md."""
    from coord.container.entrypoint import main as entrypoint_main
    entrypoint_main(list(command))


@main.command("container-healthcheck")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for the answer.")
def container_healthcheck(timeout) -> None:
    """Exit 0 if the container's server answers ruok (no quorum needed: fit for readiness probes)."""
    from coord.container.entrypoint import healthcheck
    raise SystemExit(healthcheck(timeout))


@main.command()
@click.option("--target", default=None, metavar="HOST:PORT", help="Server to measure.")
@click.option("--compare", default=None, metavar="HOST:PORT",
              help="Second server: same load in the same run; prints ratios target/compare.")
@click.option("--vs-zookeeper", is_flag=True,
              help="Start a coord server and a real ZooKeeper 3.8 here, warm up, and compare them.")
@click.option("--null-server", is_flag=True,
              help="Self-check: run the load against a do-nothing server (the client's own ceiling).")
@click.option("--force-sync/--no-force-sync", default=None,
              help="With --vs-zookeeper / --open-loop: forceSync for both servers (default no; yes with --open-loop).")
@click.option("--connections", "-n", default=8, show_default=True, help="Connections (sessions).")
@click.option("--depth", "-d", default=32, show_default=True, help="Requests in flight per connection.")
@click.option("--ops", "-k", default=100_000, show_default=True, help="Znodes (requests) per phase.")
@click.option("--data-size", default=100, show_default=True, help="Bytes of data per znode.")
@click.option("--procs", default=2, show_default=True, help="Client processes the connections are spread over.")
@click.option("--rounds", default=None, type=int, help="Rounds (medians). Default 1, or 3 with --vs-zookeeper.")
@click.option("--latency-ops", default=2000, show_default=True, help="Requests per single-request latency phase.")
@click.option("--phases", default=",".join(("create", "getData", "setData", "exists", "delete")),
              show_default=True, help="Comma-separated throughput phases.")
@click.option("--warmup-ops", default=100_000, show_default=True, help="With --vs-zookeeper: ops per warm-up phase.")
@click.option("--null-procs", default=1, show_default=True, help="With --null-server: server processes.")
@click.option("--workdir", default=None, type=click.Path(file_okay=False),
              help="With --vs-zookeeper: keep the servers' dirs here (default: a temp dir, removed).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--open-loop", is_flag=True, help="Tail latency at constant rates, coord vs a real ZooKeeper 3.8 "
              "started here (coord.bench.tail); see docs/benchmarks.md.")
@click.option("--ensemble", is_flag=True, help="With --open-loop: 3-node ensembles, connections over all members.")
@click.option("--open-ops", default="create,getData,setData,exists,delete,multi,mixed", show_default=True,
              help="With --open-loop: ops to run.")
@click.option("--fractions", default="0.25,0.5,0.75", show_default=True,
              help="With --open-loop: rates as fractions of ZooKeeper's measured maximum for each op.")
@click.option("--duration", default=60.0, show_default=True, help="With --open-loop: measured seconds per run.")
@click.option("--warmup", default=10.0, show_default=True, help="With --open-loop: unmeasured seconds first.")
@click.option("--keys", default=10_000, show_default=True, help="With --open-loop: znodes the reads go to.")
@click.option("--plot-dir", default=None, type=click.Path(file_okay=False),
              help="With --open-loop: write an HDR-style latency plot per op here (needs matplotlib).")
@click.option("--coord-env", multiple=True, metavar="KEY=VALUE",
              help="With --open-loop: environment of the coord servers (e.g. PYPY_GC_NURSERY=64MB for an A/B).")
@click.option("--rates", default=None, metavar="OP=N,...",
              help="With --open-loop: take these ops/s as 100% instead of measuring ZooKeeper's maximum.")
def bench(target, compare, vs_zookeeper, null_server, force_sync, connections, depth, ops, data_size,
          procs, rounds, latency_ops, phases, warmup_ops, null_procs, workdir, as_json, open_loop, ensemble,
          open_ops, fractions, duration, warmup, keys, plot_dir, coord_env, rates) -> None:
    """Measure throughput and latency of a ZooKeeper-protocol server (coord or ZooKeeper)."""
    from rich.console import Console
    if open_loop:
        _bench_open_loop(force_sync, connections, depth, data_size, procs, ops, workdir, as_json, ensemble,
                         open_ops, fractions, duration, warmup, keys, plot_dir, coord_env, rates)
        return
    force_sync = bool(force_sync)

    from coord.bench import main as bm
    from coord.bench.client import BenchError
    from coord.bench.phases import THROUGHPUT_PHASES, BenchConfig
    chosen = tuple(p.strip() for p in phases.split(",") if p.strip())
    bad = [p for p in chosen if p not in THROUGHPUT_PHASES]
    if bad:
        raise click.BadParameter(f"unknown phase(s) {bad}; choose from {list(THROUGHPUT_PHASES)}")
    modes = sum(bool(x) for x in (target, vs_zookeeper, null_server))
    if modes != 1:
        raise click.UsageError("give exactly one of --target, --vs-zookeeper, --null-server")
    cfg = BenchConfig(connections=connections, depth=depth, ops=ops, data_size=data_size, procs=procs,
                      latency_ops=latency_ops, phases=chosen)
    console = Console(stderr=as_json)
    try:
        if vs_zookeeper:
            bm.vs_zookeeper(cfg, rounds or 3, bool(force_sync), warmup_ops, workdir, as_json, console)
        elif null_server:
            bm.null_server_check(cfg, null_procs, as_json, console)
        else:
            bm.bench_target(target, compare, cfg, rounds or 1, as_json, console)
    except (BenchError, OSError, RuntimeError, TimeoutError) as e:
        raise click.ClickException(str(e))


def _bench_open_loop(force_sync, connections, depth, data_size, procs, ops, workdir, as_json, ensemble,
                     open_ops, fractions, duration, warmup, keys, plot_dir, coord_env, rates) -> None:
    from coord.bench import tail
    from coord.bench.churn import parse_env
    from coord.bench.client import BenchError
    full = None
    if rates:
        try:
            full = {k: float(v) for k, v in parse_env(rates.split(",")).items()}
        except ValueError:
            raise click.BadParameter(f"--rates must be OP=N,..., got {rates!r}") from None
    try:
        fr = tuple(float(f) for f in fractions.split(",") if f.strip())
    except ValueError:
        raise click.BadParameter(f"fractions must be numbers, got {fractions!r}") from None
    if not fr or any(not 0 < f <= 2 for f in fr):
        raise click.BadParameter(f"fractions must be in (0, 2], got {fractions!r}")
    chosen = tuple(o.strip() for o in open_ops.split(",") if o.strip())
    bad = [o for o in chosen if o not in tail.OPEN_OPS]
    if bad:
        raise click.BadParameter(f"unknown op(s) {bad}; choose from {list(tail.OPEN_OPS)}")
    if duration <= 0 or warmup < 0:
        raise click.BadParameter("--duration must be > 0 and --warmup >= 0")
    cfg = tail.TailConfig(ops=chosen, fractions=fr, duration_s=duration, warmup_s=warmup, connections=connections,
                          procs=procs, data_size=data_size, keys=keys, calib_ops=min(ops, 100_000), depth=depth,
                          ensemble=ensemble, force_sync=True if force_sync is None else force_sync,
                          rates=full, coord_env=parse_env(coord_env))
    log = (lambda m: click.echo(m, err=True))
    try:
        out = tail.run(cfg, workdir, plot_dir, log)
    except (BenchError, OSError, RuntimeError, TimeoutError, ValueError) as e:
        raise click.ClickException(str(e))
    click.echo(tail.dumps(out) if as_json else "\n".join(tail.table(out)))


def _add_ensemble() -> None:
    from coord.bench.ensemble import add_command as add_bench_ensemble
    from coord.ensemble import ensemble_command
    main.add_command(ensemble_command)
    add_bench_ensemble(main)


_LazyGroup.registrars.append(_add_ensemble)


def _add_storage_commands() -> None:
    from coord.bench_storage import bench_storage_command
    from coord.backup import add_commands as add_backup_commands
    from coord.datatools import data_group
    add_backup_commands(data_group)     # coord data backup | restore
    main.add_command(data_group)
    main.add_command(bench_storage_command)


_LazyGroup.registrars.append(_add_storage_commands)


def _add_churn() -> None:
    from coord.bench.churn import churn_command
    main.add_command(churn_command)
    from coord.bench.sessions import sessions_command
    main.add_command(sessions_command)


_LazyGroup.registrars.append(_add_churn)


def _add_compat() -> None:
    from coord.compat import compat_command
    main.add_command(compat_command)


_LazyGroup.registrars.append(_add_compat)


def _add_kafka_commands() -> None:
    from coord.kafka.cli import kafka_group
    main.add_command(kafka_group)


_LazyGroup.registrars.append(_add_kafka_commands)


if __name__ == "__main__":
    main()

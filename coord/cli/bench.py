"""`coord bench` (throughput and latency of any ZooKeeper-protocol server, or coord beside ZooKeeper;
`--open-loop` for the tail), `coord bench-ensemble`, `coord bench-storage`, `coord bench-churn`,
and `coord bench-scale`."""
from __future__ import annotations

import click


@click.command()
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
@click.option("--open-ops", default="create,delete,getData,exists,setData,multi,mixed", show_default=True,
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
@click.option("--coord-cfg", multiple=True, metavar="KEY=VALUE",
              help="With --open-loop: extra zoo.cfg settings of the coord servers (e.g. coord.collapseHugePages=false).")
@click.option("--preload", default=0, show_default=True,
              help="With --open-loop: znodes created before the runs (a large tree, e.g. 1000000).")
@click.option("--attribute", is_flag=True,
              help="With --open-loop: trace both systems' stalls over 2 ms (coord's COORD_STALL_TRACE; "
                   "ZooKeeper's slow-fsync warnings and JVM safepoint log) and tell which cause each request "
                   "over its p99 waited on.")
@click.option("--rates", default=None, metavar="OP=N,...",
              help="With --open-loop: take these ops/s as 100% instead of measuring ZooKeeper's maximum.")
def bench(target, compare, vs_zookeeper, null_server, force_sync, connections, depth, ops, data_size,
          procs, rounds, latency_ops, phases, warmup_ops, null_procs, workdir, as_json, open_loop, ensemble,
          open_ops, fractions, duration, warmup, keys, plot_dir, coord_env, rates, coord_cfg, preload, attribute) -> None:
    """Measure throughput and latency of a ZooKeeper-protocol server (coord or ZooKeeper)."""
    from rich.console import Console
    if open_loop:
        _bench_open_loop(force_sync, connections, depth, data_size, procs, ops, workdir, as_json, ensemble,
                         open_ops, fractions, duration, warmup, keys, plot_dir, coord_env, rates, coord_cfg, rounds or 1,
                         preload, attribute)
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
                     open_ops, fractions, duration, warmup, keys, plot_dir, coord_env, rates, coord_cfg=(), rounds=1,
                     preload=0, attribute=False) -> None:
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
    if rounds < 1:
        raise click.BadParameter(f"--rounds must be at least 1, got {rounds}")
    if duration <= 0 or warmup < 0:
        raise click.BadParameter("--duration must be > 0 and --warmup >= 0")
    if preload < 0:
        raise click.BadParameter(f"--preload must be >= 0, got {preload}")
    cfg = tail.TailConfig(ops=chosen, fractions=fr, duration_s=duration, warmup_s=warmup, connections=connections,
                          procs=procs, data_size=data_size, keys=keys, calib_ops=min(ops, 100_000), depth=depth,
                          ensemble=ensemble, force_sync=True if force_sync is None else force_sync,
                          rates=full, coord_env=parse_env(coord_env), coord_cfg=parse_env(coord_cfg), rounds=rounds,
                          preload=preload, attribute=attribute)
    log = (lambda m: click.echo(m, err=True))
    try:
        out = tail.run(cfg, workdir, plot_dir, log)
    except (BenchError, OSError, RuntimeError, TimeoutError, ValueError) as e:
        raise click.ClickException(str(e))
    click.echo(tail.dumps(out) if as_json else "\n".join(tail.table(out) + [""] + tail.stall_table(out)
                                                            + [""] + tail.cause_table(out)))


def register(main: click.Group) -> None:
    from coord.bench.churn import churn_command
    from coord.bench.ensemble import add_command as add_bench_ensemble
    from coord.bench.scale import add_command as add_bench_scale
    from coord.bench_storage import bench_storage_command
    main.add_command(bench)
    add_bench_ensemble(main)
    main.add_command(bench_storage_command)
    main.add_command(churn_command)
    add_bench_scale(main)

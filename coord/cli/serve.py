"""`coord serve`: one server process, configured by a ZooKeeper zoo.cfg."""
from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

import click


@click.command()
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
    from coord.aio.limits import raise_nofile_soft
    from coord.aio.runloop import run, setup_logging
    setup_logging(log_level)
    raise_nofile_soft()
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
        run(lambda: run_node(cfg))
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        # A busy port is an operator's mistake (often a `coord ensemble` still running), not a crash.
        raise click.ClickException(f"cannot start: {e} (is another server running? see `ss -ltnp`)")


def register(main: click.Group) -> None:
    main.add_command(serve)

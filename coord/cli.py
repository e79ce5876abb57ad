"""The `coord` command: serve, ensemble, data tools, bench, compat."""
from __future__ import annotations

import asyncio
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


@click.group()
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
    """Run one coord server."""
    from coord.aio import zoocfg
    _setup_logging(log_level)
    try:
        if config_path:
            cfg = zoocfg.load(config_path)
        else:
            cfg = zoocfg.ServerConfig(client_port_address="127.0.0.1", data_dir=Path("coord-data"))
    except zoocfg.ConfigError as e:
        raise click.ClickException(str(e))
    for w in cfg.warnings:
        logging.getLogger("coord.config").warning("%s", w)
    if port is not None:
        cfg.client_port = port
    if data_dir is not None:
        cfg.data_dir = Path(data_dir)
    from coord.aio.node import run_node
    _run(lambda: run_node(cfg))


if __name__ == "__main__":
    main()

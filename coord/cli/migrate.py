"""`coord migrate`: moving a live ZooKeeper ensemble onto coord (docs/migration.md)."""
from __future__ import annotations

import asyncio
from pathlib import Path

import click


@click.group()
def migrate() -> None:
    """Moving a live ZooKeeper ensemble onto coord (docs/migration.md)."""


@migrate.command("take-over")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False, exists=True), required=True,
              help="The zoo.cfg the coord observers run with (ZooKeeper's, plus their :observer lines).")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for each observer.")
@click.option("--wait", "wait_s", default=0.0, show_default=True,
              help="Seconds to wait for every ZooKeeper voter to stop answering (start this, then stop "
                   "the ZooKeeper servers: the take-over follows within ~50 ms).")
def migrate_take_over(config_path, timeout, wait_s) -> None:
    """Stop-the-ZooKeeper-voters-first switch: the coord observers become coord's own ensemble with
    the same zxids and sessions. Refuses while any ZooKeeper voter answers."""
    from coord.aio import zoocfg
    from coord.migrate import take_over
    try:
        cfg = zoocfg.parse(Path(config_path).read_text(), config_path)
    except zoocfg.ConfigError as e:
        raise click.ClickException(str(e))
    if wait_s > 0:
        click.echo(f"waiting up to {wait_s:g} s for every ZooKeeper voter to stop answering", nl=True)
    ok, lines = asyncio.run(take_over(cfg, timeout, wait_s))
    for line in lines:
        click.echo(line)
    raise SystemExit(0 if ok else 1)


def register(main: click.Group) -> None:
    main.add_command(migrate)

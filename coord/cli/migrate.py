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
def migrate_take_over(config_path, timeout) -> None:
    """Stop-the-ZooKeeper-voters-first switch: the coord observers become coord's own ensemble with
    the same zxids and sessions. Refuses while any ZooKeeper voter answers."""
    from coord.aio import zoocfg
    from coord.migrate import take_over
    try:
        cfg = zoocfg.parse(Path(config_path).read_text(), config_path)
    except zoocfg.ConfigError as e:
        raise click.ClickException(str(e))
    ok, lines = asyncio.run(take_over(cfg, timeout))
    for line in lines:
        click.echo(line)
    raise SystemExit(0 if ok else 1)


def register(main: click.Group) -> None:
    main.add_command(migrate)

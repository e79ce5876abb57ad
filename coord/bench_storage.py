"""`coord bench-storage`: recovery time, resident memory and snapshot stall vs ZooKeeper 3.8."""
from __future__ import annotations

import click


@click.command("bench-storage")
def bench_storage_command() -> None:
    """Storage benchmark against ZooKeeper 3.8 (forceSync=yes, same machine, same run)."""
    raise click.ClickException("not built yet")

"""The `coord` command. One module per command group, each with a `register(main)`:

    serve      `coord serve` (the server process)
    container  `coord container-entrypoint | container-healthcheck` (the Docker images' contract)
    bench      `coord bench`, `coord bench-ensemble`, `coord bench-storage`, `coord bench-churn`
    ensemble   `coord ensemble [add | remove]` (a local ensemble of processes)
    data       `coord data ...` (dump, compare, logs, import, backup, restore)
    compat     `coord compat` (checks any ZooKeeper-compatible endpoint)
    kafka      `coord kafka up | tool` (real Kafka brokers from Maven)
    migrate    `coord migrate take-over` (off a live ZooKeeper ensemble)

Only `serve` and `container` are imported up front: the other groups pull in heavy modules, and a
restarted server's start-up time counts toward its catch-up.
"""
from __future__ import annotations

import importlib

import click

from coord import __version__

_EAGER = ("serve", "container")
_LAZY = ("bench", "ensemble", "data", "compat", "kafka", "migrate")


class _LazyGroup(click.Group):
    """Registers the lazy command groups on the first lookup of a command it does not yet know."""

    pending: list = list(_LAZY)

    def _register_all(self) -> None:
        while self.pending:
            _register(self.pending.pop(0))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None and self.pending:
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


def _register(module: str) -> None:
    importlib.import_module(f"coord.cli.{module}").register(main)


for _m in _EAGER:
    _register(_m)

if __name__ == "__main__":
    main()

"""`coord container-entrypoint | container-healthcheck`: what the Docker images run (docs/docker.md)."""
from __future__ import annotations

import click


@click.command("container-entrypoint", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def container_entrypoint(command) -> None:
    """Start as the ZooKeeper Docker images do: their variables -> zoo.cfg and myid, a ZooKeeper data
    volume taken over on first start, then exec `coord serve` (or COMMAND). See docs/docker.md."""
    from coord.container.entrypoint import main as entrypoint_main
    entrypoint_main(list(command))


@click.command("container-healthcheck")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for the answer.")
def container_healthcheck(timeout) -> None:
    """Exit 0 if the container's server answers ruok (no quorum needed: fit for readiness probes)."""
    from coord.container.entrypoint import healthcheck
    raise SystemExit(healthcheck(timeout))


def register(main: click.Group) -> None:
    main.add_command(container_entrypoint)
    main.add_command(container_healthcheck)

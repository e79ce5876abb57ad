"""`coord ensemble`: a local ensemble of coord servers as processes (coord.ensemble), and its
membership subcommands `add` / `remove` (coord.ensemble_members)."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from coord.ensemble import ensemble_command
    from coord.ensemble_members import add_command, remove_command
    ensemble_command.add_command(add_command)
    ensemble_command.add_command(remove_command)
    main.add_command(ensemble_command)

"""`coord ensemble`: a local ensemble of coord servers as processes (coord.ensemble), and its
membership subcommands `add` / `remove` (coord.ensemble_members) and `roll` (coord.ensemble_roll)."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from coord.ensemble import ensemble_command
    from coord.ensemble_members import add_command, remove_command
    ensemble_command.add_command(add_command)
    ensemble_command.add_command(remove_command)
    from coord.ensemble_roll import roll_command
    ensemble_command.add_command(roll_command)
    main.add_command(ensemble_command)

"""`coord compat`: the compatibility report for any ZooKeeper-compatible endpoint (coord.compat)."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from coord.compat import compat_command
    main.add_command(compat_command)

"""`coord data`: ZooKeeper's snapshot and txn-log tools' jobs for coord and ZooKeeper data dirs
(coord.datatools), plus online backup and restore (coord.backup)."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from coord.backup import add_commands as add_backup_commands
    from coord.datatools import data_group
    add_backup_commands(data_group)     # coord data backup | restore
    main.add_command(data_group)

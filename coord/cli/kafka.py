"""`coord kafka`: real Kafka 3.9 brokers from Maven on a local ensemble (coord.kafka.cli)."""
from __future__ import annotations

import click


def register(main: click.Group) -> None:
    from coord.kafka.cli import kafka_group
    main.add_command(kafka_group)

"""Entity configs (/config/<type>/<name>) and their change notifications (AdminZkClient.changeEntityConfig,
ZkConfigManager).

A change = set-or-create the entity znode (setData -1, on NoNode create recursively, on NodeExists
set again), then a `config_change_` sequential node `{"version":2,"entity_path":"<type>/<name>"}`.
Both steps are idempotent or harmless to repeat (a duplicate notification only causes a re-read).
Entity names are URL-sanitised as Kafka's Sanitizer does; `<default>` stays as it is.
"""
from __future__ import annotations

import urllib.parse
from typing import Callable, Iterable

from kazoo.exceptions import NodeExistsError, NoNodeError

from . import codec, paths
from .model import ConfigChangeNotification, EntityConfig
from .notifications import NotificationListener, create_sequential
from .zkclient import ZkClient

CONFIG_TYPES = paths.CONFIG_TYPES


def sanitize(name: str) -> str:
    """org.apache.kafka.common.utils.Sanitizer.sanitize (URLEncoder, then `*` -> %2A, `+` -> %20)."""
    if name == paths.DEFAULT_ENTITY:
        return name
    return urllib.parse.quote(name, safe="-._*").replace("*", "%2A")


def desanitize(name: str) -> str:
    return name if name == paths.DEFAULT_ENTITY else urllib.parse.unquote(name)


def _check_type(entity_type: str) -> None:
    if entity_type not in CONFIG_TYPES and not entity_type.startswith("users/"):
        raise ValueError(f"{entity_type} is not a known entity type, should be one of {', '.join(CONFIG_TYPES)}")


def entity_path(entity_type: str, entity_name: str) -> str:
    """`<type>/<sanitized name>` (also the notification's entity_path)."""
    _check_type(entity_type)
    return f"{entity_type}/{sanitize(entity_name)}"


def get_entity_config(zk: ZkClient, entity_type: str, entity_name: str) -> dict[str, str]:
    got = zk.get_data(f"{paths.CONFIG}/{entity_path(entity_type, entity_name)}")
    return {} if got is None else codec.decode_entity_config(got[0]).config


def list_entities(zk: ZkClient, entity_type: str) -> list[str]:
    _check_type(entity_type)
    kids = zk.get_children(paths.config_entity_type(entity_type))
    return sorted(desanitize(k) for k in kids[0]) if kids else []


def set_or_create_entity_config(zk: ZkClient, entity_type: str, entity_name: str, data: bytes) -> None:
    path = f"{paths.CONFIG}/{entity_path(entity_type, entity_name)}"
    try:
        zk.set_data(path, data, -1)
        return
    except NoNodeError:
        pass
    try:
        zk.create_recursive(path, data, throw_if_exists=True)
    except NodeExistsError:
        zk.set_data(path, data, -1)


def set_entity_config(zk: ZkClient, entity_type: str, entity_name: str, config: dict[str, str], *,
                      removed: Iterable[str] = (), notify: bool = True) -> str | None:
    """Replace an entity's config; returns the change notification path (None when notify=False,
    as for a topic's initial config written by topic creation)."""
    set_or_create_entity_config(zk, entity_type, entity_name, codec.encode_entity_config(EntityConfig(config), removed))
    if not notify:
        return None
    note = ConfigChangeNotification(entity_path(entity_type, entity_name))
    return create_sequential(zk, paths.CONFIG_CHANGES, paths.CONFIG_CHANGE_PREFIX, codec.encode_config_change(note))


def alter_entity_config(zk: ZkClient, entity_type: str, entity_name: str, *, add: dict[str, str] | None = None,
                        delete: Iterable[str] = ()) -> dict[str, str]:
    """kafka-configs --alter: fetch, add/overwrite, delete, write back with a notification."""
    current = get_entity_config(zk, entity_type, entity_name)
    gone = [k for k in delete]
    missing = [k for k in gone if k not in current and k not in (add or {})]
    if missing:
        raise KeyError(f"Invalid config(s): {', '.join(missing)}")
    merged = dict(current)
    merged.update(add or {})
    removed = [k for k in gone if k in merged]
    for k in removed:
        merged.pop(k)
    set_entity_config(zk, entity_type, entity_name, merged, removed=removed)
    return merged


class ConfigChangeListener:
    """Calls `on_change(entity_type, entity_name)` for every config change notification."""

    def __init__(self, zk: ZkClient, on_change: Callable[[str, str], None], **kw):
        self.on_change = on_change
        self.listener = NotificationListener(zk, paths.CONFIG_CHANGES, paths.CONFIG_CHANGE_PREFIX, self._handle, **kw)

    def _handle(self, data: bytes) -> None:
        note = codec.decode_config_change(data)
        self.on_change(note.entity_type, desanitize(note.entity_name))

    def start(self) -> "ConfigChangeListener":
        self.listener.start()
        return self

    def close(self) -> None:
        self.listener.close()

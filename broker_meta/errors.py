"""Errors named after the Kafka exceptions they stand for."""
from __future__ import annotations


class BrokerMetaError(Exception):
    """Base class."""


class KeeperError(BrokerMetaError):
    """A ZooKeeper result code Kafka does not handle at that point (KeeperException.create(code))."""

    def __init__(self, code: int, path: str | None = None, detail: str = ""):
        self.code = code
        self.path = path
        super().__init__(f"KeeperErrorCode = {code}" + (f" for {path}" if path else "") + (f": {detail}" if detail else ""))


class NodeExistsOwnerMismatch(KeeperError):
    """Our ephemeral path is held by another live session (crash + fast restart)."""

    def __init__(self, path: str, owner: int, session: int):
        self.owner = owner
        self.session = session
        super().__init__(-110, path, f"node already exists and owner '0x{owner:x}' does not match current session '0x{session:x}'")


class ControllerMovedError(BrokerMetaError):
    """The /controller_epoch version check failed: another controller was elected."""


class TopicExistsError(BrokerMetaError):
    pass


class UnknownTopicError(BrokerMetaError):
    pass


class TopicAlreadyMarkedForDeletionError(BrokerMetaError):
    pass


class InvalidTopicError(BrokerMetaError):
    pass


class InvalidPartitionsError(BrokerMetaError):
    pass


class InvalidReplicaAssignmentError(BrokerMetaError):
    pass


class InvalidConfigError(BrokerMetaError):
    pass

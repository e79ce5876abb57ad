"""coord: a ZooKeeper-compatible coordination service."""
__version__ = "0.1.0"

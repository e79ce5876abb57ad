"""The ZooKeeper client wire: jute codec, records, protocol numbers, frames. Standard library only."""

"""`coord bench`: a lean multi-process load client for ZooKeeper-protocol servers, and the
harness that measures coord against Apache ZooKeeper 3.8 in the same run (docs/benchmarks.md)."""

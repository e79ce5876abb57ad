"""Speaking Apache ZooKeeper 3.8's own peer protocol: coord as an observer of a live ZooKeeper
ensemble (the second peer state machine beside coord's Zab, sharing the tree, sessions and request
path). `digest` ZooKeeper's tree digest, `wiresnap` the snapshot a leader streams on SNAP,
`election` finding the leader as ZooKeeper's observers do, `observer` the Learner/Observer protocol."""

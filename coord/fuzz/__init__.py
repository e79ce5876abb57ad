"""Coverage-guided fuzzing (atheris) of the surfaces that take bytes from outside.

One target per surface, each a module in coord.fuzz with `test_one_input(data: bytes)` that raises
only when an invariant breaks (an exception escaping the code under test counts as one):

  client    client-port frames -> FrameSplitter -> ServerCore: a protocol error and a closed
            connection, never an exception, malformed output or an inconsistent tree
  peer      peer-link frames (coord.aio.peer.FrameReader) and Zab messages (coord.core.zab.messages):
            a FrameError or DecodeError, or a message that re-encodes to exactly the same bytes
  txnlog    a damaged txn log (coord.core.logformat, coord.aio.txnlog, recovery in coord.aio.datadir):
            refused, or loaded as exactly a prefix of what was written
  snapshot  a damaged snapshot (coord.core.snapformat, coord.aio.snapshots, recovery): refused, or
            loaded as exactly what was written; a crafted one (checksums re-sealed) only ever refused
            or loaded as a consistent tree

`python -m coord.fuzz <target> --seconds N` runs one (docs/fuzzing.md). The seed corpus lives in
tests/fuzz/corpus/<target>/ and is made by `python -m coord.fuzz corpus`.
"""
TARGETS = ("client", "peer", "txnlog", "snapshot")

"""A SNAP sync streamed from the leader's live tree, a slice per tick.

Encoding a whole tree at once stalls the leader (about a second per 100,000 znodes here), during
which it pings no one and serves no one; a large tree would outlast syncLimit. Instead a TreeCapture
(coord.core.snapformat) pins the tree as of the sync point in O(1), and each `next()` (one per tick
of the leader; `QuorumPeer.streaming` asks the driver to tick again at once) encodes up to
`slice_nodes` more nodes into sealed frames, returned as SNAP chunks. The learner builds each frame
as it arrives (snapformat.SnapshotReceiver), so its loading overlaps the leader's encoding. Chunks
carry `total` = 0 until the last, which carries the whole length. The tree keeps changing meanwhile;
the leader follows the stream with a DIFF from its zxid (its history is pinned there until then).
"""
from __future__ import annotations

from coord.core import snapformat
from coord.core.zab import messages as M


class SnapStream:
    __slots__ = ("capture", "enc", "zxid", "slice_nodes", "chunk_bytes", "buf", "offset", "done")

    def __init__(self, tree, *, created_ms: int, slice_nodes: int, chunk_bytes: int):
        self.capture = snapformat.TreeCapture(tree, listed=True)
        self.zxid = self.capture.zxid
        self.slice_nodes = max(1, slice_nodes)
        self.chunk_bytes = max(1, chunk_bytes)
        self.enc = snapformat.SnapshotEncoder(self.zxid, self.capture.sessions, chunk_nodes=self.slice_nodes)
        self.buf = bytearray(snapformat.header(self.zxid, created_ms=created_ms))
        self.offset = 0          # bytes already sent
        self.done = False

    def next(self) -> list[M.Snap]:
        """The chunks of one more slice (the last ones once the whole tree is encoded). Raises
        SnapshotError if the captured state was not kept (then nothing more may be sent)."""
        enc = self.enc
        finished = self.capture.emit(enc, self.slice_nodes)
        frames = enc.finish() if finished else enc.take()
        buf = self.buf
        for kind, raw in frames:
            buf += snapformat.seal_frame(kind, raw)
        if finished:
            self.close()
            if enc.digest != self.capture.digest or enc.node_count != self.capture.node_count:
                raise snapformat.SnapshotError(f"captured tree changed while streaming (digest 0x{enc.digest:x}"
                                               f" != 0x{self.capture.digest:x})")
        out = []
        step = self.chunk_bytes
        while buf:                      # everything encoded so far: the learner builds it meanwhile
            piece = bytes(buf[:step])
            del buf[:step]
            last = finished and not buf
            total = self.offset + len(piece) if last else 0
            out.append(M.Snap(self.zxid, total, self.offset, piece))
            self.offset += len(piece)
            if last:
                break
        self.done = finished
        return out

    def close(self) -> None:
        self.capture.close()

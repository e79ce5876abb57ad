"""Length-prefixed frames (4-byte big-endian length + payload) with a size bound.

The splitter is fed bytes as they arrive and yields whole payloads; a length over the bound or
negative raises FrameTooLarge, after which the connection must be closed (ZooKeeper does the same
for `Len error`), so one hostile client can never make the server buffer unbounded data.
"""
from __future__ import annotations

import struct

_LEN = struct.Struct(">i")


class FrameTooLarge(ValueError):
    pass


class FrameSplitter:
    __slots__ = ("max_frame", "_buf")

    def __init__(self, max_frame: int):
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append data; return every complete payload now available (in order).

        With nothing buffered (the usual case) frames are sliced straight out of data, and only
        an incomplete tail is kept."""
        buf = self._buf
        if buf:
            buf += data
            src = buf
        else:
            src = data
        frames = []
        pos = 0
        n = len(src)
        unpack = _LEN.unpack_from
        max_frame = self.max_frame
        while n - pos >= 4:
            (length,) = unpack(src, pos)
            if length < 0 or length > max_frame:
                if src is not buf:
                    buf += memoryview(data)[pos:]
                raise FrameTooLarge(f"frame length {length} outside [0, {max_frame}]")
            end = pos + 4 + length
            if end > n:
                break
            frames.append(bytes(src[pos + 4:end]))
            pos = end
        if src is buf:
            if pos:
                del buf[:pos]
        elif pos < n:
            buf += memoryview(data)[pos:]
        return frames

    def buffered(self) -> int:
        return len(self._buf)


def frame(payload: bytes | bytearray) -> bytes:
    return _LEN.pack(len(payload)) + payload

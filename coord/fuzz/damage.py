"""Fuzz input read as choices, and as a program of disk faults applied to a file's bytes.

The file targets do not fuzz files directly (a checksum turns almost every mutation into the same
early refusal): they start from a valid file the real writer produced and let the fuzzer choose
*damage* to it, so coverage guidance explores which damage reaches which part of the reader. The
faults are those disks and crashes make (bit flips, lost sectors read as zeros, torn or missing
tails, garbage appended, misdirected writes copying one block over another) and a few no disk makes
(inserted or deleted bytes) that a reader must still refuse.
"""
from __future__ import annotations


class Choices:
    """Reads fuzz bytes as small integers; past the end every read is 0 (the input is all used)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def left(self) -> int:
        return len(self.data) - self.pos

    def u8(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return self.u8() << 8 | self.u8()

    def u32(self) -> int:
        return self.u16() << 16 | self.u16()

    def take(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def rest(self) -> bytes:
        return self.take(self.left())


FLIP, SET, ZERO, TRUNCATE, APPEND, DELETE, INSERT, COPY = range(8)
MAX_FAULTS = 8


def _offset(c: Choices, n: int) -> int:
    return c.u32() % n if n else 0


def apply_faults(c: Choices, data: bytes) -> tuple[bytes, list[str]]:
    """Apply up to MAX_FAULTS faults read from c to data; return the damaged bytes and what was done."""
    b = bytearray(data)
    done = []
    for _ in range(min(c.u8() % (MAX_FAULTS + 1), MAX_FAULTS)):
        if not c.left():
            break
        op = c.u8() % 8
        n = len(b)
        if op == FLIP:
            at = _offset(c, n)
            bit = c.u8() % 8
            if n:
                b[at] ^= 1 << bit
            done.append(f"flip bit {bit} at {at}")
        elif op == SET:
            at, v = _offset(c, n), c.u8()
            if n:
                b[at] = v
            done.append(f"set byte {at} to {v}")
        elif op == ZERO:
            at, ln = _offset(c, n), c.u16() % 4097
            b[at:at + ln] = bytes(len(b[at:at + ln]))
            done.append(f"zero {ln} bytes at {at}")
        elif op == TRUNCATE:
            at = _offset(c, n + 1)
            del b[at:]
            done.append(f"truncate at {at}")
        elif op == APPEND:
            extra = c.take(c.u8())
            b += extra
            done.append(f"append {len(extra)} bytes")
        elif op == DELETE:
            at, ln = _offset(c, n), c.u16() % 4097
            del b[at:at + ln]
            done.append(f"delete {ln} bytes at {at}")
        elif op == INSERT:
            at = _offset(c, n + 1)
            extra = c.take(c.u8())
            b[at:at] = extra
            done.append(f"insert {len(extra)} bytes at {at}")
        else:
            src, dst, ln = _offset(c, n), _offset(c, n), c.u16() % 4097
            block = b[src:src + ln]
            b[dst:dst + len(block)] = block
            done.append(f"copy {len(block)} bytes from {src} to {dst}")
    return bytes(b), done


def encode_faults(*faults: tuple) -> bytes:
    """The input bytes that make apply_faults do exactly `faults` (the seed corpora use it).
    Each fault is (op, *args) with the arguments apply_faults reads, in order; offsets are taken
    modulo the file's length, so a seed can name one directly."""
    out = bytearray([len(faults)])
    for op, *args in faults:
        out.append(op)
        if op == FLIP:
            out += args[0].to_bytes(4, "big") + bytes([args[1]])
        elif op == SET:
            out += args[0].to_bytes(4, "big") + bytes([args[1]])
        elif op in (ZERO, DELETE):
            out += args[0].to_bytes(4, "big") + args[1].to_bytes(2, "big")
        elif op == TRUNCATE:
            out += args[0].to_bytes(4, "big")
        elif op == APPEND:
            out += bytes([len(args[0])]) + args[0]
        elif op == INSERT:
            out += args[0].to_bytes(4, "big") + bytes([len(args[1])]) + args[1]
        else:
            out += args[0].to_bytes(4, "big") + args[1].to_bytes(4, "big") + args[2].to_bytes(2, "big")
    return bytes(out)

"""Jute, ZooKeeper's serialization: big-endian int/long, one-byte bool, length-prefixed buffer and
ustring (length -1 means null), vectors with an int count (-1 means null), records as fields in order.

Records are declared as field lists and compiled once, at import, into straight-line Python functions
(consecutive fixed-width fields become one struct call): a lean hot path without hand-writing every
record twice. Every decoder bounds-checks lengths against the bytes present, so hostile input can only
ever raise JuteError.
"""
from __future__ import annotations

import struct
from typing import Any, Callable

__all__ = ["JuteError", "Record", "record", "decode", "encode", "freeze_vector"]


class JuteError(ValueError):
    """The bytes are not a valid encoding of the expected record."""


_FIXED = {"int": ("i", 4), "long": ("q", 8), "bool": ("?", 1)}
_STRUCTS: dict[str, struct.Struct] = {}
_INT = struct.Struct(">i")


def _struct(fmt: str) -> struct.Struct:
    s = _STRUCTS.get(fmt)
    if s is None:
        s = _STRUCTS[fmt] = struct.Struct(">" + fmt)
    return s


# As org.apache.jute.BinaryInputArchive: length -1 is null, any other negative length is an error
# (checkLength), a negative vector count other than -1 is an empty vector, and malformed UTF-8 in a
# ustring decodes with U+FFFD replacements (new String(bytes, UTF_8)) rather than failing.
def _read_buffer(b, p: int):
    (n,) = _INT.unpack_from(b, p)
    p += 4
    if n < 0:
        if n == -1:
            return None, p
        raise JuteError(f"negative buffer length {n}")
    e = p + n
    if e > len(b):
        raise JuteError(f"buffer length {n} exceeds the {len(b) - p} bytes left")
    return bytes(b[p:e]), e


def _read_ustring(b, p: int):
    (n,) = _INT.unpack_from(b, p)
    p += 4
    if n < 0:
        if n == -1:
            return None, p
        raise JuteError(f"negative string length {n}")
    e = p + n
    if e > len(b):
        raise JuteError(f"string length {n} exceeds the {len(b) - p} bytes left")
    try:
        return str(b[p:e], "utf-8"), e
    except UnicodeDecodeError:
        return str(b[p:e], "utf-8", "replace"), e


def _write_buffer(out: bytearray, v) -> None:
    if v is None:
        out += b"\xff\xff\xff\xff"
    else:
        out += _INT.pack(len(v))
        out += v


def _write_ustring(out: bytearray, v) -> None:
    if v is None:
        out += b"\xff\xff\xff\xff"
    else:
        e = v.encode("utf-8")
        out += _INT.pack(len(e))
        out += e


_MIN_SIZE = {"int": 4, "long": 8, "bool": 1, "buffer": 4, "ustring": 4}


def _vector_reader(elem: str) -> Callable:
    if elem in _FIXED:
        code, size = _FIXED[elem]

        def read(b, p):
            (n,) = _INT.unpack_from(b, p)
            p += 4
            if n < 0:
                return (None if n == -1 else []), p
            if n * size > len(b) - p:
                raise JuteError(f"vector of {n} exceeds the bytes left")
            vals = list(_struct(code * n).unpack_from(b, p)) if n else []
            return vals, p + n * size
        return read
    item = _reader_for(elem)
    min_size = _MIN_SIZE.get(elem, 1)

    def read(b, p):
        (n,) = _INT.unpack_from(b, p)
        p += 4
        if n < 0:
            return (None if n == -1 else []), p
        if n * min_size > len(b) - p:
            raise JuteError(f"vector of {n} exceeds the bytes left")
        vals = []
        append = vals.append
        for _ in range(n):
            v, p = item(b, p)
            append(v)
        return vals, p
    if elem == "ACL":
        return _memoised(read)
    return read


def _memoised(read: Callable, size: int = 4) -> Callable:
    """A vector reader that remembers the bytes of the first few vectors it decoded (requests
    repeat the same one or two ACLs): when the input continues with one of those byte strings, the
    decode is the same, so its elements are reused in a new list. Bounded; misses decode as usual."""
    memo: list[tuple[bytes, list]] = []

    def read_memo(b, p):
        for blob, vals in memo:
            e = p + len(blob)
            if b[p:e] == blob:
                return list(vals), e
        vals, e = read(b, p)
        if vals and len(memo) < size:
            memo.append((bytes(b[p:e]), vals))
            return list(vals), e
        return vals, e
    return read_memo


def _vector_writer(elem: str) -> Callable:
    item = _writer_for(elem)

    def write(out, v):
        if v is None:
            out += b"\xff\xff\xff\xff"
            return
        out += _INT.pack(len(v))
        for x in v:
            item(out, x)
    if elem == "ACL":
        return _frozen_first(write)
    return write


# Lists declared never to change (the ACL record lists the tree shares between nodes), with their
# encoding, by id; the list itself is held here too, so its id cannot be reused while listed.
_FROZEN: dict[int, tuple[list, bytes]] = {}
_FROZEN_MAX = 4096


def freeze_vector(values: list, write: Callable | None = None) -> None:
    """Declare that `values` will never be mutated: writers of its vector type copy its encoding,
    made once here, instead of encoding it again. Bounded; lists past the bound encode as usual."""
    if len(_FROZEN) < _FROZEN_MAX:
        out = bytearray()
        (write or _vector_writer("ACL"))(out, values)
        _FROZEN[id(values)] = (values, bytes(out))


def _frozen_first(write: Callable) -> Callable:
    frozen = _FROZEN

    def write_frozen(out, v):
        hit = frozen.get(id(v))
        if hit is not None and hit[0] is v:
            out += hit[1]
        else:
            write(out, v)
    return write_frozen


def _reader_for(t: str) -> Callable:
    if t == "buffer":
        return _read_buffer
    if t == "ustring":
        return _read_ustring
    if t.startswith("vector<"):
        return _vector_reader(t[7:-1])
    if t in _FIXED:
        s = _struct(_FIXED[t][0])

        def read(b, p):
            return s.unpack_from(b, p)[0], p + s.size
        return read
    return RECORDS[t]._read


def _writer_for(t: str) -> Callable:
    if t == "buffer":
        return _write_buffer
    if t == "ustring":
        return _write_ustring
    if t.startswith("vector<"):
        return _vector_writer(t[7:-1])
    if t in _FIXED:
        s = _struct(_FIXED[t][0])

        def write(out, v):
            out += s.pack(v)
        return write
    return RECORDS[t]._write_into


class Record:
    """Base of compiled records: __slots__ fields, equality by value, positional or keyword init."""

    __slots__ = ()
    FIELDS: tuple[tuple[str, str], ...] = ()

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and all(
            getattr(self, f) == getattr(other, f) for f, _ in self.FIELDS)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f, _ in self.FIELDS)
        return f"{type(self).__name__}({inner})"

    def _fields(self) -> tuple:
        return tuple(getattr(self, f) for f, _ in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def encode(self) -> bytes:
        out = bytearray()
        self._write_into(out, self)
        return bytes(out)


RECORDS: dict[str, type[Record]] = {}


def record(name: str, fields: list[tuple[str, str]]) -> type[Record]:
    """Compile a record class from (field, jute type) pairs, in wire order.

    ustring and buffer fields are read and written inline (no helper call per field); nested
    records and vectors call their own compiled functions, bound on first use (a record may refer
    to one declared later)."""
    names = [f for f, _ in fields]
    ns: dict[str, Any] = {"JuteError": JuteError, "_I": _INT.unpack_from, "_IP": _INT.pack,
                          "_NULL": b"\xff\xff\xff\xff"}
    init_args = ", ".join(f"{f}=None" for f in names)
    init_body = "".join(f"    self.{f} = {f}\n" for f in names) or "    pass\n"
    read_lines = ["def _read(b, p):", "  try:"]
    write_lines = ["def _write_into(out, r):"]
    i = 0
    helper_no = 0
    while i < len(fields):
        f, t = fields[i]
        if t in _FIXED:
            group = []
            while i < len(fields) and fields[i][1] in _FIXED:
                group.append(fields[i])
                i += 1
            fmt = "".join(_FIXED[gt][0] for _, gt in group)
            sname = f"_s{helper_no}"
            helper_no += 1
            st = _struct(fmt)
            ns[sname + "u"] = st.unpack_from
            ns[sname + "p"] = st.pack
            targets = ", ".join(g for g, _ in group) + ","
            read_lines.append(f"    {targets} = {sname}u(b, p); p += {st.size}")
            vals = ", ".join(f"r.{g}" for g, _ in group)
            write_lines.append(f"    out += {sname}p({vals})")
            continue
        if t in ("ustring", "buffer"):
            what = "string" if t == "ustring" else "buffer"
            # BinaryInputArchive: -1 is null, other negative lengths fail, bad UTF-8 becomes U+FFFD
            # Frames arrive as bytes, whose slices are bytes already and decode faster by method
            # than through str(); other buffers (bytearray, memoryview) take the general form.
            if t == "ustring":
                conv = ('s.decode("utf-8", "replace") if s.__class__ is bytes '
                        'else str(s, "utf-8", "replace")')
            else:
                conv = "s if s.__class__ is bytes else bytes(s)"
            read_lines += [
                "    n, = _I(b, p); p += 4",
                "    if n < 0:",
                "      if n != -1:",
                f'        raise JuteError(f"negative {what} length {{n}}")',
                f"      {f} = None",
                "    else:",
                "      e = p + n",
                "      if e > len(b):",
                f'        raise JuteError(f"{what} length {{n}} exceeds the {{len(b) - p}} bytes left")',
                f"      s = b[p:e]; {f} = {conv}; p = e",
            ]
            write_lines += [
                f"    v = r.{f}",
                "    if v is None:",
                "      out += _NULL",
                "    else:",
                ('      v = v.encode("utf-8"); out += _IP(len(v)); out += v' if t == "ustring" else
                 "      out += _IP(len(v)); out += v"),
            ]
        else:
            hname = f"_h{helper_no}"
            helper_no += 1
            ns[hname + "r"] = _Bind(ns, hname + "r", t, _reader_for)
            ns[hname + "w"] = _Bind(ns, hname + "w", t, _writer_for)
            read_lines.append(f"    {f}, p = {hname}r(b, p)")
            write_lines.append(f"    {hname}w(out, r.{f})")
        i += 1
    if len(read_lines) == 2:
        read_lines.append("    pass")
    read_lines += ["  except UnicodeDecodeError as exc:",
                   '    raise JuteError(f"string is not UTF-8: {exc}") from None',
                   f"  return _cls({', '.join(names)}), p"]
    if len(write_lines) == 1:
        write_lines.append("    pass")
    src = (f"def __init__(self, {init_args}):\n{init_body}" if names else "def __init__(self):\n    pass\n")
    src += "\n".join(read_lines) + "\n" + "\n".join(write_lines) + "\n"
    exec(compile(src, f"<jute {name}>", "exec"), ns)
    cls = type(name, (Record,), {
        "__slots__": tuple(names),
        "FIELDS": tuple(fields),
        "__init__": ns["__init__"],
        "_read": staticmethod(ns["_read"]),
        "_write_into": staticmethod(ns["_write_into"]),
    })
    ns["_cls"] = cls
    RECORDS[name] = cls
    return cls


class _Bind:
    """A nested record or vector codec, resolved on its first call and then bound into the compiled
    functions' globals, so later calls go straight to it."""

    __slots__ = ("ns", "name", "t", "resolve")

    def __init__(self, ns: dict, name: str, t: str, resolve: Callable):
        self.ns = ns
        self.name = name
        self.t = t
        self.resolve = resolve

    def __call__(self, a, b):
        fn = self.ns[self.name] = self.resolve(self.t)
        return fn(a, b)


def decode(cls: type[Record], data, pos: int = 0, *, exact: bool = False):
    """Decode one record from data at pos; returns (record, next_pos). Any malformation is JuteError."""
    try:
        rec, p = cls._read(data, pos)
    except struct.error as exc:
        raise JuteError(f"{cls.__name__}: truncated ({exc})") from None
    if exact and p != len(data):
        raise JuteError(f"{cls.__name__}: {len(data) - p} trailing bytes")
    return rec, p


def encode(rec: Record, out: bytearray | None = None) -> bytearray:
    """Append rec's encoding to out (a new bytearray if None) and return it."""
    if out is None:
        out = bytearray()
    rec._write_into(out, rec)
    return out


def read_int(b, p: int) -> tuple[int, int]:
    try:
        return _INT.unpack_from(b, p)[0], p + 4
    except struct.error:
        raise JuteError("truncated int") from None


def read_bool(b, p: int) -> tuple[bool, int]:
    if p >= len(b):
        raise JuteError("truncated bool")
    return b[p] != 0, p + 1


def read_buffer(b, p: int):
    try:
        return _read_buffer(b, p)
    except struct.error:
        raise JuteError("truncated buffer") from None


def read_ustring(b, p: int):
    try:
        return _read_ustring(b, p)
    except struct.error:
        raise JuteError("truncated string") from None

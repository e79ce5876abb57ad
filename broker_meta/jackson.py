"""Compact JSON exactly as Kafka's `Json.encodeAsBytes` (a default Jackson ObjectMapper) writes it.

Differences from `json.dumps(separators=(",", ":"))` that matter for byte equality: non-ASCII is
written raw as UTF-8 (never `\\uXXXX`), control characters other than \\b \\t \\n \\f \\r become
`\\u00XX` with upper-case hex, and `/` is not escaped. Objects are written in the order of the dict
given; callers put keys in the JVM map's iteration order (see jvmorder).
"""
from __future__ import annotations

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _escape(s: str) -> str:
    out = []
    for ch in s:
        esc = _SHORT.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20:
            out.append("\\u%04X" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _write(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_escape(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for k, v in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_escape(str(k)))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as Kafka JSON")


def encode_as_string(value: object) -> str:
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def encode_as_bytes(value: object) -> bytes:
    return encode_as_string(value).encode("utf-8", "surrogatepass")

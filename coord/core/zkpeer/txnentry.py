"""One serialised ZooKeeper txn as logs and quorum packets carry it: TxnHeader, the txn record (a
closeSession may have none), and since 3.6 an optional TxnDigest (version int, tree digest long)."""
from __future__ import annotations

import struct

from coord.core.datatree import TXN_RECORD
from coord.jute import records as R
from coord.jute.codec import JuteError, decode

_DIGEST = struct.Struct(">iq")


class TxnEntryError(ValueError):
    pass


def decode_txn_entry(buf) -> tuple:
    """(hdr, txn, (digest version, digest) or None); TxnEntryError if the bytes are not one txn."""
    try:
        hdr, p = decode(R.TxnHeader, buf, 0)
        t = hdr.type
        txn = None
        if not (t == -11 and p == len(buf)):
            cls = TXN_RECORD.get(t)
            if cls is None:
                raise TxnEntryError(f"unsupported txn type {t} at zxid 0x{hdr.zxid:x}")
            txn, p = decode(cls, buf, p)
    except (JuteError, struct.error) as e:
        raise TxnEntryError(f"txn does not decode: {e}") from None
    rest = len(buf) - p
    if rest == _DIGEST.size:
        return hdr, txn, _DIGEST.unpack_from(buf, p)
    if rest:
        raise TxnEntryError(f"{rest} unexpected bytes after txn 0x{hdr.zxid:x}")
    return hdr, txn, None

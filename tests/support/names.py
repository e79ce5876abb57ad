"""Fresh znode names for tests on a shared (module-, class- or session-scoped) server."""
from __future__ import annotations

import uuid


def fresh(prefix: str) -> str:
    """`prefix-<8 hex digits>`: a name no earlier attempt used. A rerun of a failed test meets the
    servers its first attempt used, with that attempt's nodes (and live ephemerals) still there."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

"""Time-ordered ids (UUIDv7) for workflows and audit rows.

A uuid4 primary key lands on a random B-tree leaf, and every page a commit
dirties is another WAL frame; time-ordered ids grow their indexes at the
right edge, so a step transition touches fewer pages.
"""

from __future__ import annotations

import os
import time
from uuid import UUID


def time_ordered_id() -> str:
    """Return a UUIDv7 string: 48 bits of Unix milliseconds, then 74 random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(UUID(int=value))

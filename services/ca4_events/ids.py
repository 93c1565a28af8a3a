"""UUIDv7 event ids (RFC 9562): time-ordered, so documents sort by arrival in the database.

Python 3.11 has no ``uuid.uuid7``; the layout is small enough to build here instead of
adding a dependency.
"""

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_last_rand_a = 0


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7; ids made in the same millisecond still increase."""
    global _last_ms, _last_rand_a  # noqa: PLW0603 - monotonic counter state
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _last_rand_a = int.from_bytes(os.urandom(2), "big") & 0x07FF
        else:
            # same (or earlier, if the clock stepped back) millisecond: count up in rand_a
            ms = _last_ms
            _last_rand_a += 1
            if _last_rand_a > 0x0FFF:
                _last_ms += 1
                ms = _last_ms
                _last_rand_a = 0
        rand_a = _last_rand_a
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= rand_a << 64
    value |= 0b10 << 62
    value |= rand_b
    return uuid.UUID(int=value)

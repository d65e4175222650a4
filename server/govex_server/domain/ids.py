"""Server-generated identifiers and resource names (AIP-122).

Ids are ULIDs: 48 bits of milliseconds then 80 random bits, Crockford base32,
26 characters. They sort by creation time, so "newest first" is "id
descending" and pagination needs no timestamp.
"""

from __future__ import annotations

import os
import re
import threading
from datetime import datetime

from govex_server.domain.errors import invalid_field

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


class UlidFactory:
    """Makes ULIDs that increase strictly within one process, even within one
    millisecond (the random part is incremented), so ordering by id is
    ordering by creation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def new(self, at: datetime) -> str:
        """A new id for something created at ``at``."""
        millis = int(at.timestamp() * 1000) & ((1 << 48) - 1)
        with self._lock:
            value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
            if value <= self._last:
                value = self._last + 1
            self._last = value
        chars = []
        for _ in range(26):
            chars.append(_ALPHABET[value & 31])
            value >>= 5
        return "".join(reversed(chars))


def is_valid_id(value: str) -> bool:
    """True when ``value`` looks like an id this server could have made."""
    return bool(_ID_RE.match(value))


def parse_name(name: str, collection: str, field: str = "name") -> str:
    """Returns the id of ``{collection}/{id}``; INVALID_ARGUMENT naming
    ``field`` when the name is empty or malformed."""
    if not name:
        raise invalid_field(field, f"required: a resource name like {collection}/{{id}}")
    prefix = collection + "/"
    if not name.startswith(prefix) or not is_valid_id(name[len(prefix) :]):
        raise invalid_field(
            field, f"malformed resource name {name[:80]!r}: expected {collection}/{{id}}"
        )
    return name[len(prefix) :]

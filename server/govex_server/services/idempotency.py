"""The idempotency key of a mutating request (AIP-155)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Idempotency:
    """A mutating request's idempotency key and how to render the response
    that a repeat must get back (stored in the change's own transaction)."""

    rpc: str
    request_id: str
    fingerprint: str
    encode: Callable[[Any], bytes]

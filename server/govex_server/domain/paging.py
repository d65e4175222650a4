"""Opaque page tokens (AIP-158): the last id served plus a hash of the
request's filter, so a token cannot be replayed against another filter."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from govex_server.domain.errors import invalid_field
from govex_server.domain.ids import is_valid_id

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Page:
    """A validated page request: at most ``size`` items after ``after_id``."""

    size: int
    after_id: str | None
    filter_key: str


def filter_key(parts: Sequence[str]) -> str:
    """A short stable hash of the filter fields of a list request."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def parse_page(
    page_size: int,
    page_token: str,
    key: str,
    valid: Callable[[str], bool] = is_valid_id,
    default_size: int = DEFAULT_PAGE_SIZE,
) -> Page:
    """Validates ``page_size`` (0 = default, at most 1000, never negative) and
    ``page_token`` (empty, or one this server issued for the same filter);
    ``valid`` says what a position in the token looks like (an id)."""
    if page_size < 0:
        raise invalid_field("page_size", f"{page_size} is negative")
    size = min(page_size or default_size, MAX_PAGE_SIZE)
    if not page_token:
        return Page(size, None, key)
    try:
        padded = page_token + "=" * (-len(page_token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after, token_key = data["a"], data["f"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        raise invalid_field("page_token", "not a token this server issued") from None
    if not isinstance(after, str) or not valid(after) or not isinstance(token_key, str):
        raise invalid_field("page_token", "not a token this server issued")
    if token_key != key:
        raise invalid_field("page_token", "issued for a request with other filters")
    return Page(size, after, key)


def next_token(page: Page, last_id: str | None, full: bool) -> str:
    """The token for the page after ``last_id``; empty when this page was not
    full (there is nothing more)."""
    if not full or last_id is None:
        return ""
    raw = json.dumps({"a": last_id, "f": page.filter_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

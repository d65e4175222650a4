"""Following AIP-158 pages until the last one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

if TYPE_CHECKING:
    from govex_client.core import ClientCore


async def all_pages(
    core: ClientCore, method: Callable[..., Awaitable[Any]], request: Message, items: str
) -> list[Any]:
    """Every item of field ``items`` over all pages of ``request``."""
    found: list[Any] = []
    while True:
        response = await core.call(method, request)
        found.extend(getattr(response, items))
        token: str = response.next_page_token
        if not token:
            return found
        setattr(request, "page_token", token)  # noqa: B010

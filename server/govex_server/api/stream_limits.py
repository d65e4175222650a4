"""How many streams one connection and one principal may hold open at once.

Thousands of streams on one connection starve everybody else's calls (gRPC
core serves a connection's streams in turn); past a limit, a new stream is
refused with RESOURCE_EXHAUSTED at once, with the limit named, and logged."""

from __future__ import annotations

import logging
from collections import Counter

from govex_server.domain.errors import Category, GovexError

log = logging.getLogger("govex.api")


class StreamLimits:
    """Counts open streams per connection (the peer address) and principal."""

    def __init__(self, per_connection: int, per_principal: int) -> None:
        self.per_connection = per_connection
        self.per_principal = per_principal
        self._by_peer: Counter[str] = Counter()
        self._by_principal: Counter[str] = Counter()

    def acquire(self, peer: str, principal: str) -> None:
        """Counts one more stream, or RESOURCE_EXHAUSTED."""
        if self._by_peer[peer] >= self.per_connection:
            self._refuse(
                "STREAMS_PER_CONNECTION",
                f"this connection already has {self.per_connection} open streams "
                "(max_streams_per_connection); open another connection or close some",
                principal,
                peer,
            )
        if self._by_principal[principal] >= self.per_principal:
            self._refuse(
                "STREAMS_PER_PRINCIPAL",
                f"{principal} already has {self.per_principal} open streams "
                "(max_streams_per_principal); close some first",
                principal,
                peer,
            )
        self._by_peer[peer] += 1
        self._by_principal[principal] += 1

    def release(self, peer: str, principal: str) -> None:
        """Counts one stream less."""
        for counter, key in ((self._by_peer, peer), (self._by_principal, principal)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    def open_streams(self, principal: str) -> int:
        """How many streams ``principal`` holds open."""
        return self._by_principal[principal]

    def _refuse(self, reason: str, message: str, principal: str, peer: str) -> None:
        log.warning("stream refused for %s at %s: %s", principal, peer, reason)
        raise GovexError(
            Category.RESOURCE_EXHAUSTED,
            reason,
            message,
            metadata={"principal": principal},
        )

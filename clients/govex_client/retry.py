"""When a failed call is tried again, and after how long (pure: no I/O).

Reads and mutations are retried alike: every mutation the client sends
carries a request_id, and the server answers a repeat of one with its first
response instead of acting twice. What is retried: UNAVAILABLE (the server
or the network is down for a moment), DEADLINE_EXCEEDED (the answer may be
on its way: the repeat is answered from the first), and RESOURCE_EXHAUSTED
only when the server says when (RetryInfo). The wait is the server's
RetryInfo delay when it gave one, else a "full jitter" exponential backoff
(a random wait up to base * 2**attempt, capped), so that a crowd of clients
cut at once does not come back at once.

gRPC's own service-config retry policy is not used: it cannot read
google.rpc.RetryInfo from the status details, and it would retry a mutation
without knowing that it carries a request_id."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import grpc

ALWAYS_RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
# Retried only when the server said when (RetryInfo).
RETRIED_WHEN_TOLD = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED})
# A stream cut by these resumes from the last position it reported.
STREAM_RESUMED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and how long to wait between tries."""

    attempts: int = 4  # the first try included
    base_seconds: float = 0.2
    cap_seconds: float = 5.0
    # The longest RetryInfo delay honoured; a longer one is the caller's to wait.
    max_told_seconds: float = 30.0
    # A cut stream is opened again this many times in a row without an item
    # (0: for as long as it takes, the wait capped: a watcher outlives a
    # server restart or a failover).
    stream_attempts: int = 0

    def retried(self, code: grpc.StatusCode, told: timedelta | None) -> bool:
        """Whether a call that failed with ``code`` is worth another try."""
        if code in ALWAYS_RETRIED:
            return True
        return (
            code in RETRIED_WHEN_TOLD
            and told is not None
            and told.total_seconds() <= self.max_told_seconds
        )

    def delay(
        self,
        attempt: int,
        told: timedelta | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts
        from 0): the server's delay with up to 10% added, else full jitter."""
        if told is not None:
            return float(told.total_seconds() * (1 + 0.1 * rand()))
        return float(rand() * min(self.cap_seconds, self.base_seconds * 2**attempt))

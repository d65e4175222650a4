"""The terms of an execution lease: how long a claim or renewal holds, how
often the owner renews, and until when the owner may still call the exchange.

The owner renews at a third of the lease. It calls the exchange only before
its *send deadline*: the start of its last successful renewal (on its own
monotonic clock, which a paused process does not escape) plus the lease
minus one renewal period. Another replica claims the lease only after its
expiry in the store, so the two never act at once as long as the replicas'
wall clocks are less than a renewal period apart (NTP keeps them within
milliseconds)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LeaseTerms:
    """``seconds``: how long a claim or renewal holds (``lease_seconds``)."""

    seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.seconds <= 600.0:
            raise ValueError(f"lease_seconds must be within [1, 600], got {self.seconds}")

    @property
    def renew_every(self) -> float:
        """Seconds between two renewals (and two looks for orphaned leases)."""
        return self.seconds / 3

    def expires(self, now: datetime) -> datetime:
        """The expiry stored by a claim or renewal made at ``now``."""
        return now + timedelta(seconds=self.seconds)

    def send_deadline(self, renewal_started: float) -> float:
        """The monotonic time after which the owner must not call the
        exchange, for a renewal (or claim) that started at ``renewal_started``."""
        return renewal_started + self.seconds - self.renew_every

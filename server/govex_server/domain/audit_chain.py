"""The audit log as a hash chain: each record carries the SHA-256 of the
previous record's hash and its own canonical content, so editing, deleting or
reordering any stored record breaks every link after it.

    hash(n) = sha256(hash(n-1) + "\\n" + content(n)), hash(0) = "0" * 64

``content`` is the record's fields as JSON with sorted keys, no spaces and
ASCII escapes: the exact bytes a verifier outside govex hashes again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


# The stored fields a record's content is made of.
FIELDS = (
    "at",
    "principal",
    "principal_kind",
    "mode",
    "rpc",
    "resource",
    "etag_before",
    "etag_after",
    "reason",
    "details",
)


def content(sequence: int, fields: Mapping[str, Any]) -> str:
    """The canonical JSON of one record (``at`` as an ISO-8601 UTC string);
    ``fields`` holds at least :data:`FIELDS`."""
    document = {key: _plain(fields[key]) for key in FIELDS}
    document["sequence"] = sequence
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def link(previous_hash: str, record_content: str) -> str:
    """The hash of a record whose predecessor's hash is ``previous_hash``."""
    return hashlib.sha256(f"{previous_hash}\n{record_content}".encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        # SQLite hands back naive datetimes; every stored time is UTC.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


@dataclass(frozen=True)
class ChainedRecord:
    """What verification needs of a stored record."""

    sequence: int
    content: str
    previous_hash: str
    hash: str


@dataclass(frozen=True)
class Verdict:
    """The outcome of walking (part of) the chain."""

    count: int
    head_hash: str
    broken_at: int | None = None  # the sequence of the first bad record
    problem: str = ""

    @property
    def intact(self) -> bool:
        """True when every link held."""
        return self.broken_at is None


class ChainWalk:
    """Checks records one by one, in sequence order, from a known link."""

    def __init__(self, after_sequence: int = 0, after_hash: str = GENESIS) -> None:
        self.count = 0
        self._sequence = after_sequence
        self._hash = after_hash
        self.broken: Verdict | None = None

    def feed(self, records: Iterable[ChainedRecord]) -> bool:
        """Checks the next records; False once a link is broken."""
        for record in records:
            problem = self._check(record)
            if problem:
                self.broken = Verdict(self.count, self._hash, record.sequence, problem)
                return False
            self.count += 1
            self._sequence, self._hash = record.sequence, record.hash
        return True

    def _check(self, record: ChainedRecord) -> str:
        if record.sequence != self._sequence + 1:
            return (
                f"record {record.sequence} follows record {self._sequence}: "
                f"record {self._sequence + 1} is missing or out of order"
            )
        if record.previous_hash != self._hash:
            return (
                f"record {record.sequence} names previous hash {record.previous_hash[:16]}…, "
                f"record {self._sequence} hashes to {self._hash[:16]}…"
            )
        if link(record.previous_hash, record.content) != record.hash:
            return f"record {record.sequence}'s content does not match its hash"
        return ""

    def finish(self, head_sequence: int, head_hash: str) -> Verdict:
        """The verdict, given the head the database says it wrote last."""
        if self.broken is not None:
            return self.broken
        if (self._sequence, self._hash) != (head_sequence, head_hash):
            return Verdict(
                self.count,
                self._hash,
                self._sequence + 1 if head_sequence > self._sequence else self._sequence,
                f"the chain ends at record {self._sequence} but its head says record "
                f"{head_sequence} ({head_hash[:16]}…): records were removed from the end",
            )
        return Verdict(self.count, self._hash)

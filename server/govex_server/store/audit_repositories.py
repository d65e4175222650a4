"""The audit log (a hash chain, domain/audit_chain.py) and the idempotency
records of mutating requests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from govex_server.domain import audit_chain
from govex_server.domain.filters import Condition
from govex_server.domain.principals import Principal
from govex_server.store import tables as t
from govex_server.store.filtering import where
from govex_server.store.prepared import Prepared

# The head moves only from the state the new record was hashed against: a
# stale guess of the head matches no row (rowcount 0) and is read again.
_HEAD_MOVE = Prepared(
    update(t.audit_head)
    .where(
        t.audit_head.c.id == 1,
        t.audit_head.c.sequence == bindparam("b_sequence"),
        t.audit_head.c.hash == bindparam("b_hash"),
    )
    .values(sequence=bindparam("n_sequence"), hash=bindparam("n_hash"))
)
_HEAD = select(t.audit_head.c.sequence, t.audit_head.c.hash).where(t.audit_head.c.id == 1)
# FOR UPDATE on PostgreSQL; SQLite has one writer.
_HEAD_LOCKED = Prepared(_HEAD.with_for_update())
_AUDIT_INSERT = Prepared(insert(t.audit_log), [c.key for c in t.audit_log.c if c.key != "id"])
_IDEMPOTENCY_GET = select(t.idempotency_keys.c.fingerprint, t.idempotency_keys.c.response).where(
    t.idempotency_keys.c.principal == bindparam("b_principal"),
    t.idempotency_keys.c.rpc == bindparam("b_rpc"),
    t.idempotency_keys.c.request_id == bindparam("b_request_id"),
    t.idempotency_keys.c.created_at >= bindparam("b_since"),
)
_IDEMPOTENCY_INSERT = Prepared(insert(t.idempotency_keys), [c.key for c in t.idempotency_keys.c])
_IDEMPOTENCY_EXPIRED = Prepared(
    delete(t.idempotency_keys).where(
        t.idempotency_keys.c.principal == bindparam("b_principal"),
        t.idempotency_keys.c.rpc == bindparam("b_rpc"),
        t.idempotency_keys.c.request_id == bindparam("b_request_id"),
        t.idempotency_keys.c.created_at < bindparam("b_before"),
    )
)
# Who the audit log names for changes nobody asked for.
SERVER = ("govex", "system")


@dataclass(frozen=True)
class AuditRecord:
    """One append-only audit entry."""

    at: datetime
    principal: str
    principal_kind: str
    mode: str
    rpc: str
    resource: str
    etag_before: str | None
    etag_after: str | None
    reason: str
    details: dict[str, Any]

    @classmethod
    def by(
        cls,
        actor: Principal | None,
        *,
        at: datetime,
        rpc: str,
        resource: str,
        reason: str,
        details: dict[str, Any],
        mode: str = "",
        etag_before: str | None = None,
        etag_after: str | None = None,
    ) -> AuditRecord:
        """The record of what ``actor`` did; ``None`` for what the server did
        on its own (an expiry, a principals reload)."""
        name, kind = (actor.name, actor.kind.value) if actor is not None else SERVER
        return cls(at, name, kind, mode, rpc, resource, etag_before, etag_after, reason, details)


@dataclass(frozen=True)
class StoredAuditRecord:
    """An audit entry as stored: its place in the chain and its hashes."""

    sequence: int
    record: AuditRecord
    previous_hash: str
    hash: str

    @property
    def content(self) -> str:
        """The canonical content that was hashed, recomputed from the columns
        (never stored, so an edited column cannot hide behind it)."""
        return audit_chain.content(self.sequence, self.record.__dict__)

    def chained(self) -> audit_chain.ChainedRecord:
        """What the chain walk checks."""
        return audit_chain.ChainedRecord(self.sequence, self.content, self.previous_hash, self.hash)


@dataclass(frozen=True)
class AuditQuery:
    """Which records a page holds (every bound optional)."""

    resource: str = ""
    principal: str = ""
    since: datetime | None = None
    until: datetime | None = None
    conditions: tuple[Condition, ...] = ()


def _stored(row: RowMapping) -> StoredAuditRecord:
    record = AuditRecord(**{name: row[name] for name in audit_chain.FIELDS})
    return StoredAuditRecord(row["sequence"], record, row["previous_hash"], row["hash"])


class HeadGuess:
    """The chain's head as this process last wrote it (one per Store). It
    saves reading the head before each append; it may be stale (another
    replica wrote, or the transaction that wrote it rolled back), which the
    conditional head UPDATE detects."""

    def __init__(self) -> None:
        self.value: tuple[int, str] | None = None


Head = tuple[int, str]  # (sequence, hash) of the newest record


def chained(head: Head, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Head]:
    """The rows of ``records`` (AuditRecord fields) chained after ``head``,
    in order, and the head after them."""
    sequence, previous = head
    rows = []
    for fields in records:
        sequence += 1
        digest = audit_chain.link(previous, audit_chain.content(sequence, fields))
        rows.append({**fields, "sequence": sequence, "previous_hash": previous, "hash": digest})
        previous = digest
    return rows, (sequence, previous)


class AuditRepository:
    """The audit log. Append-only: there is no update or delete here.

    ``deferred`` (the SQLite writer's batches): ``append`` only keeps the
    record; the writer chains it inside the unit's savepoint and inserts the
    rows of the whole batch before it commits (store/batch_ledger.py)."""

    def __init__(
        self,
        conn: Connection,
        guess: HeadGuess | None = None,
        deferred: list[dict[str, Any]] | None = None,
    ) -> None:
        self._conn = conn
        self._guess = guess or HeadGuess()
        self._deferred = deferred

    def append(self, record: AuditRecord) -> None:
        """Adds one record at the chain's head, in the caller's transaction
        (when deferred: by the writer, still in the unit's transaction)."""
        if self._deferred is not None:
            self._deferred.append(record.__dict__)
            return
        head = self._guess.value
        for _ in range(2):
            if head is None:
                head = self.locked_head()
            rows, new = chained(head, [record.__dict__])
            if self.write_chained(head, new, rows):
                self._guess.value = new
                return
            head = None  # the guess was stale: read the head under its lock
        raise RuntimeError("the audit head moved while it was locked")

    def take_deferred(self) -> list[dict[str, Any]]:
        """The records ``append`` kept (deferred), in order."""
        records = self._deferred or []
        self._deferred = []
        return records

    def locked_head(self) -> Head:
        """The head row, locked until the commit (FOR UPDATE on PostgreSQL;
        SQLite has one writer)."""
        row = _HEAD_LOCKED.first(self._conn)
        assert row is not None, "the audit_head row is missing"
        return int(row[0]), str(row[1])

    def write_chained(self, old: Head, new: Head, rows: list[dict[str, Any]]) -> bool:
        """Moves the head from ``old`` to ``new`` and inserts ``rows``; False
        (nothing written) when the head is not at ``old``. Moving the head
        row locks it, so concurrent transactions (other replicas) chain one
        after another."""
        moved = _HEAD_MOVE.execute(
            self._conn,
            {"n_sequence": new[0], "n_hash": new[1], "b_sequence": old[0], "b_hash": old[1]},
        )
        if moved != 1:
            return False
        if len(rows) == 1:
            _AUDIT_INSERT.execute(self._conn, rows[0])
        else:
            _AUDIT_INSERT.execute_many(self._conn, rows)
        return True

    def head(self) -> tuple[int, str]:
        """``(sequence, hash)`` of the newest record (0 and GENESIS if none)."""
        sequence, digest = self._conn.execute(_HEAD).one()
        return int(sequence), str(digest)

    def page(
        self, after_sequence: int, limit: int, query: AuditQuery | None = None
    ) -> list[StoredAuditRecord]:
        """Records after ``after_sequence``, oldest first."""
        log = t.audit_log
        statement = select(log).where(log.c.sequence > after_sequence)
        if query is not None:
            if query.resource:
                statement = statement.where(log.c.resource == query.resource)
            if query.principal:
                statement = statement.where(log.c.principal == query.principal)
            if query.since is not None:
                statement = statement.where(log.c.at >= query.since)
            if query.until is not None:
                statement = statement.where(log.c.at < query.until)
            columns = {
                "rpc": log.c.rpc,
                "resource": log.c.resource,
                "principal": log.c.principal,
                "principal_kind": log.c.principal_kind,
                "sequence": log.c.sequence,
                "time": log.c.at,
            }
            statement = statement.where(*where(query.conditions, columns))
        rows = self._conn.execute(statement.order_by(log.c.sequence).limit(limit))
        return [_stored(row) for row in rows.mappings()]

    def last(self, count: int) -> list[StoredAuditRecord]:
        """The newest ``count`` records, oldest first."""
        log = t.audit_log
        rows = self._conn.execute(select(log).order_by(log.c.sequence.desc()).limit(count))
        return [_stored(row) for row in reversed(rows.mappings().all())]

    def for_resource(self, resource: str) -> list[AuditRecord]:
        """Every record about ``resource``, oldest first."""
        return [s.record for s in self.page(0, 1_000_000, AuditQuery(resource=resource))]


class IdempotencyRepository:
    """First responses of mutating requests, keyed per principal, RPC and
    request_id (AIP-155), kept for the retention period."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(
        self, principal: str, rpc: str, request_id: str, since: datetime
    ) -> tuple[str, bytes] | None:
        """``(fingerprint, response)`` of the first request with this key,
        if it was made at or after ``since``."""
        result = self._conn.execute(
            _IDEMPOTENCY_GET,
            {
                "b_principal": principal,
                "b_rpc": rpc,
                "b_request_id": request_id,
                "b_since": since,
            },
        )
        row = result.first()
        return (row[0], bytes(row[1])) if row else None

    def put(
        self,
        principal: str,
        rpc: str,
        request_id: str,
        fingerprint: str,
        response: bytes,
        at: datetime,
        expired_before: datetime,
    ) -> None:
        """Stores the first response, in the transaction of the change itself.
        A key made before ``expired_before`` (past its retention, not pruned
        yet) no longer counts and is replaced."""
        _IDEMPOTENCY_EXPIRED.execute(
            self._conn,
            {
                "b_principal": principal,
                "b_rpc": rpc,
                "b_request_id": request_id,
                "b_before": expired_before,
            },
        )
        _IDEMPOTENCY_INSERT.execute(
            self._conn,
            {
                "principal": principal,
                "rpc": rpc,
                "request_id": request_id,
                "fingerprint": fingerprint,
                "response": response,
                "created_at": at,
            },
        )

    def replace(self, principal: str, rpc: str, request_id: str, response: bytes) -> None:
        """Replaces a stored response (its work went on after the first write)."""
        keys = t.idempotency_keys
        self._conn.execute(
            update(keys)
            .where(
                keys.c.principal == principal, keys.c.rpc == rpc, keys.c.request_id == request_id
            )
            .values(response=response)
        )

    def delete_before(self, cutoff: datetime) -> int:
        """Forgets keys older than ``cutoff``; returns how many."""
        keys = t.idempotency_keys
        result = self._conn.execute(delete(keys).where(keys.c.created_at < cutoff))
        return int(result.rowcount)

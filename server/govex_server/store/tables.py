"""SQL tables (SQLAlchemy Core). The Alembic migrations create exactly these;
tests/integration/test_migrations.py checks the two never drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from govex_server.domain import money

# SQLAlchemy's storage format of a DATETIME on SQLite (microseconds always).
_SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no zone:
    values are normalised to UTC on the way in and tagged on the way out)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: every time is UTC-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return _utc(datetime.fromisoformat(value) if isinstance(value, str) else value)

    # The hot statements (prepared.py) bind and read with these on SQLite:
    # the same values as this decorator composed with SQLAlchemy's DATETIME
    # processors (test_fast_codecs.py checks it), without their three calls
    # a value, which were a tenth of the writer thread's time.
    @staticmethod
    def sqlite_bind(value: datetime | None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError("SQLite DateTime type only accepts Python datetime objects")
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: every time is UTC-aware")
        v = value.astimezone(UTC)
        return _SQLITE_TIME % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)

    @staticmethod
    def sqlite_result(value: str | None) -> datetime | None:
        return None if value is None else _utc(datetime.fromisoformat(value))


def _utc(parsed: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite's carry no zone)."""
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class Amount(TypeDecorator[Decimal]):
    """Exact decimals: NUMERIC on PostgreSQL (unconstrained, so a value keeps
    its own scale), TEXT on SQLite (a NUMERIC column there has numeric
    affinity and would turn the value into a binary float)."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        return Amount.sqlite_bind(value) if dialect.name == "sqlite" else _decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return Amount.sqlite_result(value)

    # As UtcDateTime's: the decorator's own conversion, called directly.
    @staticmethod
    def sqlite_bind(value: Decimal | None) -> str | None:
        checked = _decimal(value)
        return None if checked is None else money.text(checked)

    @staticmethod
    def sqlite_result(value: Any) -> Decimal | None:
        if value is None or isinstance(value, Decimal):
            return value
        return money.exact(value)


def _decimal(value: Decimal | None) -> Decimal | None:
    """An amount to store: a Decimal (a float would not be exact) or None."""
    if value is not None and not isinstance(value, Decimal):
        raise TypeError(f"amounts are Decimals, not {type(value).__name__}")
    return value


metadata = MetaData()

plans = Table(
    "plans",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("targets", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("proposed_by", String(64), nullable=False),
    Column("proposed_under_mode", String(16), nullable=False),
    # Every lifecycle step (who, kind, time, comment), keyed by step name.
    Column("steps", JSON, nullable=False),
    # Kept as a column of its own: the cooldown reads the newest one.
    Column("activated_at", UtcDateTime, nullable=True),
    Column("executed_at", UtcDateTime, nullable=True),
    Column("cooldown_overridden", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# The database, not only the code, keeps at most one ACTIVE plan.
Index(
    "uq_plans_single_active",
    plans.c.state,
    unique=True,
    sqlite_where=text("state = 'ACTIVE'"),
    postgresql_where=text("state = 'ACTIVE'"),
)
Index("ix_plans_state_id", plans.c.state, plans.c.id)
Index("ix_plans_activated_at", plans.c.activated_at)

governance_mode = Table(
    "governance_mode",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=True),
    Column("updated_by", String(64), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("at", UtcDateTime, nullable=False),
    Column("principal", String(64), nullable=False),
    Column("principal_kind", String(8), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("rpc", String(64), nullable=False),
    Column("resource", String(128), nullable=False),
    Column("etag_before", String(64), nullable=True),
    Column("etag_after", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("details", JSON, nullable=False),
    # The hash chain (domain/audit_chain.py): gap-free sequence, the previous
    # record's hash and this record's.
    Column("sequence", BigInteger, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("sequence", name="uq_audit_log_sequence"),
)
Index("ix_audit_log_resource", audit_log.c.resource)
Index("ix_audit_log_principal", audit_log.c.principal)

# The chain's head, one row: the sequence and hash of the newest record. Every
# append locks it (FOR UPDATE), which orders the chain across replicas, and it
# shows a record removed from the end.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("principal", String(64), primary_key=True),
    Column("rpc", String(64), primary_key=True),
    Column("request_id", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)

freezes = Table(
    "freezes",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("type", String(24), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expire_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime, nullable=True),
    Column("end_kind", String(8), nullable=True),
    Column("ended_by", String(64), nullable=False),
    Column("end_reason", Text, nullable=False),
)
Index("ix_freezes_end_kind_expire_time", freezes.c.end_kind, freezes.c.expire_time)

# The event log. ``sequence`` is given out by ``event_counter`` inside the
# writing transaction: the counter row's lock orders commits by sequence and a
# rollback gives its number back, so the log has no gaps and never shows a
# later sequence before an earlier one.
events = Table(
    "events",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(40), nullable=False),
    Column("time", UtcDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("resource", String(128), nullable=False),
    # The serialized govex.governance.v1.GovernanceEvent, sequence included:
    # streams send it without serializing it again.
    Column("payload", LargeBinary, nullable=False),
)
Index("ix_events_time", events.c.time)

event_counter = Table(
    "event_counter",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Every published signal set (history); the newest by as_of is "current".
signal_sets = Table(
    "signal_sets",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("as_of", UtcDateTime, nullable=False),
    Column("publisher", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
)
Index("ix_signal_sets_as_of", signal_sets.c.as_of)

# The policy engine's memory (prudent state, smoothing, freshness, the policy
# in force, the phase engine): one row, so that a restart derives the same.
policy_state = Table(
    "policy_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("policy", JSON, nullable=False),
    Column("phase", JSON, nullable=False),
)

executions = Table(
    "executions",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("plan_id", String(26), nullable=False),
    Column("exchange", String(64), nullable=False),
    Column("state", String(20), nullable=False),
    Column("strategy", String(12), nullable=False),
    Column("max_parallel", Integer, nullable=False),
    Column("safety_level", String(12), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("actor_kind", String(8), nullable=False),
    Column("state_reason", Text, nullable=False),
    Column("legs", JSON, nullable=False),
    Column("policy", JSON, nullable=False),
    Column("portfolio_value", Amount, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    # The lease (store/leases.py): written only by claims and renewals.
    Column("owner", String(128), nullable=False, server_default=""),
    Column("lease_expires", UtcDateTime, nullable=True),
    Column("lease_generation", Integer, nullable=False, server_default="0"),
)
# A plan has at most one running execution, enforced by the database.
Index(
    "uq_executions_one_running_per_plan",
    executions.c.plan_id,
    unique=True,
    sqlite_where=text("state IN ('PENDING', 'RUNNING', 'CANCELLING')"),
    postgresql_where=text("state IN ('PENDING', 'RUNNING', 'CANCELLING')"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("execution_id", String(26), nullable=False),
    Column("client_order_id", String(40), nullable=False, unique=True),
    Column("exchange_order_id", String(64), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Amount, nullable=False),
    Column("price", Amount, nullable=False),
    Column("reference_price", Amount, nullable=False),
    Column("filled", Amount, nullable=False),
    Column("average_price", Amount, nullable=False),
    Column("fee", Amount, nullable=False),
    Column("state", String(20), nullable=False),
    Column("state_reason", Text, nullable=False),
    Column("leg_index", Integer, nullable=False),
    Column("slice_index", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("operation", String(20), nullable=False),
    Column("day", Integer, nullable=False),
    Column("scheduled_at", UtcDateTime, nullable=False),
    Column("safety", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # When the order went to the exchange (the resting TTL counts from it).
    Column("sent_at", UtcDateTime, nullable=True),
)
Index("ix_orders_execution_id", orders.c.execution_id)
Index("ix_orders_state", orders.c.state)

# Notional traded per account and UTC day (the safety validator's daily limit).
daily_notional = Table(
    "daily_notional",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("notional", Amount, nullable=False),
)

# What each account's orders at the exchange may still trade, kept by
# triggers on orders (migration 0011): one row read before every send.
in_flight_notional = Table(
    "in_flight_notional",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("notional", Amount, nullable=False),
)

# Exchange accounts configured at run time (ConnectExchange). Credentials are
# stored encrypted (Fernet, key from the settings) and never returned.
exchange_accounts = Table(
    "exchange_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("ccxt_id", String(40), nullable=False),
    Column("sandbox", Boolean, nullable=False),
    Column("quote", String(16), nullable=False),
    Column("max_orders_per_window", Integer, nullable=False),
    Column("credentials", LargeBinary, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

"""Amounts become exact decimals: NUMERIC on PostgreSQL, decimal text on
SQLite (whose NUMERIC affinity would keep binary floats).

Every existing value is rewritten as the decimal its float was written as
(its shortest repr: 0.1 stays 0.1, not 0.1000000000000000055...). The event
log's payloads are serialized protos written with the old contract: an order
event's amounts were doubles and its type a string, a policy's min_trade_usd
a double. They are rewritten at the wire level into the new encoding (a
google.type.Decimal message, the OrderType enum), so that a replay shows
the same amounts as before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# table -> (primary key columns, amount columns)
AMOUNTS = {
    "executions": (("id",), ("portfolio_value",)),
    "orders": (("id",), ("quantity", "price", "reference_price", "filled", "average_price", "fee")),
    "daily_notional": (("account", "day"), ("notional",)),
}


def _canonical(value: object) -> str:
    """A stored float as the decimal it was written as, in plain notation."""
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    text = format(exact, "f")
    return "0" if exact.is_zero() else text


# Wire types of the protobuf encoding.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
# Order (govex.execution.v1): type = 6 (string -> OrderType), quantity..fee
# = 7..11 (double -> Decimal). OrderEvent.order = 3. GovernanceEvent.policy =
# 13; ExecutionPolicy.min_trade_usd = 4 (double -> Decimal).
_ORDER_AMOUNTS = frozenset({7, 8, 9, 10, 11})
_ORDER_TYPES = {b"limit": 1, b"market": 2}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(number, wire type, the field's whole encoding) of each field."""
    at = 0
    while at < len(data):
        start = at
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            _, at = _varint(data, at)
        elif wire == _FIXED64:
            at += 8
        elif wire == _FIXED32:
            at += 4
        elif wire == _LEN:
            size, at = _varint(data, at)
            at += size
        else:
            raise ValueError(f"unexpected wire type {wire} in a stored event")
        yield number, wire, data[start:at]


def _payload(encoded: bytes) -> bytes:
    """The bytes of a length-delimited field's value."""
    _, at = _varint(encoded, 0)
    _, at = _varint(encoded, at)
    return encoded[at:]


def _len_field(number: int, value: bytes) -> bytes:
    return _put_varint(number << 3 | _LEN) + _put_varint(len(value)) + value


def _decimal_field(number: int, encoded_double: bytes) -> bytes:
    (value,) = struct.unpack("<d", encoded_double[-8:])
    text = _canonical(value).encode()
    return _len_field(number, _len_field(1, text))  # google.type.Decimal{value = 1}


def _rewrite(data: bytes, rule: Callable[[int, int, bytes], bytes]) -> bytes:
    return b"".join(rule(number, wire, encoded) for number, wire, encoded in _fields(data))


def _order(number: int, wire: int, encoded: bytes) -> bytes:
    if number in _ORDER_AMOUNTS and wire == _FIXED64:
        return _decimal_field(number, encoded)
    if number == 6 and wire == _LEN:
        kind = _ORDER_TYPES.get(_payload(encoded), 0)
        return _put_varint(6 << 3 | _VARINT) + _put_varint(kind) if kind else b""
    return encoded


def _order_event(number: int, wire: int, encoded: bytes) -> bytes:
    if number == 3 and wire == _LEN:
        return _len_field(3, _rewrite(_payload(encoded), _order))
    return encoded


def _policy(number: int, wire: int, encoded: bytes) -> bytes:
    if number == 4 and wire == _FIXED64:
        return _decimal_field(4, encoded)
    return encoded


def _governance_event(number: int, wire: int, encoded: bytes) -> bytes:
    if number == 13 and wire == _LEN:
        return _len_field(13, _rewrite(_payload(encoded), _policy))
    return encoded


def _upgrade_events(bind: sa.Connection) -> None:
    events = sa.table("events", sa.column("sequence"), sa.column("kind"), sa.column("payload"))
    rules = {"ORDER_UPDATED": _order_event, "POLICY_CHANGED": _governance_event}
    query = sa.select(events.c.sequence, events.c.kind, events.c.payload).where(
        events.c.kind.in_(list(rules))
    )
    for sequence, kind, payload in bind.execute(query).all():
        new = _rewrite(bytes(payload), rules[kind])
        if new != bytes(payload):
            bind.execute(sa.update(events).where(events.c.sequence == sequence).values(payload=new))


def _amount_type(dialect: str) -> sa.types.TypeEngine[object]:
    return sa.Text() if dialect == "sqlite" else sa.Numeric()


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for table, (keys, columns) in AMOUNTS.items():
        handle = sa.table(table, *(sa.column(c) for c in (*keys, *columns)))
        # Read the floats before the type changes: SQLite's own REAL -> TEXT
        # conversion keeps 15 digits in exponent notation.
        rows = bind.execute(sa.select(handle)).mappings().all()
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    type_=_amount_type(dialect),
                    existing_nullable=False,
                    postgresql_using=f"{column}::numeric",
                )
        for row in rows:
            values = {
                c: _canonical(row[c]) if dialect == "sqlite" else Decimal(_canonical(row[c]))
                for c in columns
            }
            bind.execute(
                sa.update(handle).where(*(handle.c[k] == row[k] for k in keys)).values(**values)
            )
    _upgrade_events(bind)


def downgrade() -> None:
    # The columns go back to floats; event payloads keep the new encoding
    # (the older server then shows those amounts unset, as it would any
    # unknown field).
    for table, (_keys, columns) in AMOUNTS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    type_=sa.Float(),
                    existing_nullable=False,
                    postgresql_using=f"{column}::double precision",
                )

"""The notional traded per account and UTC day, and what its orders at the
exchange may still trade: what a send is checked against."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from govex_server.domain import money
from govex_server.store import tables as t
from govex_server.store.prepared import Prepared

# The advisory lock of an account's sends on PostgreSQL: (class, account).
_ACCOUNT_LOCK = select(
    func.pg_advisory_xact_lock(literal(7301947), func.hashtext(bindparam("b_account")))
)
_NOTIONAL_KEY = (
    t.daily_notional.c.account == bindparam("b_account"),
    t.daily_notional.c.day == bindparam("b_day"),
)
_NOTIONAL_GET = Prepared(select(t.daily_notional.c.notional).where(*_NOTIONAL_KEY))
# Traded that day, and what the account's orders at the exchange may still
# trade (kept by the triggers of migration 0011): one read.
_COUNTED = Prepared(
    select(
        select(t.daily_notional.c.notional).where(*_NOTIONAL_KEY).scalar_subquery(),
        select(t.in_flight_notional.c.notional)
        .where(t.in_flight_notional.c.account == bindparam("b_account"))
        .scalar_subquery(),
    )
)
# The sum is made by the database, exactly: NUMERIC + on PostgreSQL, and on
# SQLite the govex_decimal_add function the store registers (its + would go
# through binary floats).
_AMOUNT = bindparam("b_amount", type_=t.Amount)
_NOTIONAL_ADD = {
    "sqlite": Prepared(
        update(t.daily_notional)
        .where(*_NOTIONAL_KEY)
        .values(notional=func.govex_decimal_add(t.daily_notional.c.notional, _AMOUNT))
    ),
    "postgresql": Prepared(
        update(t.daily_notional)
        .where(*_NOTIONAL_KEY)
        .values(notional=t.daily_notional.c.notional + _AMOUNT)
    ),
}
_NOTIONAL_INSERT = Prepared(insert(t.daily_notional), ["account", "day", "notional"])


class DailyNotionalRepository:
    """Notional traded per account and UTC day; a new day starts at zero."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def serialize(self, account: str) -> None:
        """Makes the caller's unit the only one checking and recording a
        send on ``account`` until it commits, so that each check sees the
        orders the others sent. On PostgreSQL a transaction-scoped advisory
        lock (concurrent units run on separate connections and would not
        see each other's uncommitted orders); on SQLite the one writer
        already runs one unit at a time."""
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(_ACCOUNT_LOCK, {"b_account": account})

    def get(self, account: str, day: date) -> Decimal:
        """Traded so far that day."""
        row = _NOTIONAL_GET.first(self._conn, {"b_account": account, "b_day": day.isoformat()})
        value: Decimal | None = row[0] if row is not None else None
        return value if value is not None else money.ZERO

    def counted(self, account: str, day: date) -> Decimal:
        """What counts against that day's limits: the notional traded, plus
        what the account's orders at the exchange may still trade (the
        unfilled part of each, at its limit price: the most it can cost)."""
        row = _COUNTED.first(self._conn, {"b_account": account, "b_day": day.isoformat()})
        traded, in_flight = row if row is not None else (None, None)
        return (traded or money.ZERO) + (in_flight or money.ZERO)

    def add(self, account: str, day: date, amount: Decimal) -> None:
        """Adds ``amount`` to that day's total, exactly, in one statement
        (the UPDATE's row lock orders concurrent writers)."""
        key = {"b_account": account, "b_day": day.isoformat()}
        updated = _NOTIONAL_ADD[self._conn.dialect.name].execute(
            self._conn, {**key, "b_amount": amount}
        )
        if updated == 0:
            _NOTIONAL_INSERT.execute(
                self._conn, {"account": account, "day": day.isoformat(), "notional": amount}
            )

"""List filters (domain.filters conditions) as SQL WHERE clauses."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement

from govex_server.domain.filters import Condition

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def where(
    conditions: Sequence[Condition], columns: Mapping[str, ColumnElement[Any]]
) -> list[ColumnElement[bool]]:
    """One clause per condition. ``columns`` maps every field the List
    declared to its column; a time compared with an unset (NULL) column is
    false, as in ``filters.matches``. ``!=`` on a nullable column keeps the
    NULL rows out too, for the same reason."""
    clauses: list[ColumnElement[bool]] = []
    for c in conditions:
        column = columns[c.field]
        clauses.append(_OPS[c.op](column, c.value))
    return clauses

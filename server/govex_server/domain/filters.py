"""The ``filter`` of every List request: a subset of AIP-160.

    filter     := comparison ("AND" comparison)*
    comparison := field operator value
    operator   := "=" | "!=" | "<" | "<=" | ">" | ">="
    value      := a bare word (ACTIVE, true, 42) or a "quoted string"

Each List declares its fields and their kinds; a field it does not declare,
an operator its kind does not allow, a value of the wrong kind, OR, NOT and
parentheses are INVALID_ARGUMENT on ``filter`` with the position of the
fault. The result is a list of typed conditions the store turns into SQL (or
a service applies to what it holds in memory)."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from govex_server.domain.errors import invalid_field

MAX_FILTER = 1000
MAX_CONDITIONS = 20
_TOKEN = re.compile(
    r'\s*(?:(?P<op><=|>=|!=|=|<|>)|(?P<string>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z0-9_.:+\-]+)'
    r"|(?P<other>\S))"
)
_FIELD = re.compile(r"^[a-z][a-z0-9_]*$")
_RESERVED = {"OR", "NOT", "AND"}


class Kind(enum.Enum):
    """What a filterable field holds, and so which operators it allows."""

    ENUM = "enum"  # = and !=
    STRING = "string"  # = and !=
    BOOL = "bool"  # = and !=
    TIME = "time"  # every operator; an RFC 3339 string
    INT = "int"  # every operator


_ORDERED = frozenset({"=", "!=", "<", "<=", ">", ">="})
_EQUALITY = frozenset({"=", "!="})


@dataclass(frozen=True)
class Field:
    """A filterable field: its kind, and for an enum the accepted names (the
    proto name, such as PLAN_STATE_ACTIVE, or its short form, ACTIVE) mapped
    to the stored value."""

    kind: Kind
    values: Mapping[str, str] | None = None


def enum_field(prefix: str, stored: Iterable[str]) -> Field:
    """An enum field whose stored values are ``stored`` (ACTIVE, ...), named
    in filters as ``ACTIVE`` or ``{prefix}ACTIVE``."""
    names: dict[str, str] = {}
    for value in stored:
        names[value] = value
        names[prefix + value] = value
    return Field(Kind.ENUM, names)


@dataclass(frozen=True)
class Condition:
    """One comparison, typed: ``value`` is a str, bool, int or datetime."""

    field: str
    op: str
    value: Any


def _fault(position: int, message: str) -> Exception:
    return invalid_field("filter", f"at character {position + 1}: {message}")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:  # only trailing blanks are left
            break
        kind = match.lastgroup or "other"
        out.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return out


def _value(spec: Field, name: str, raw: str, quoted: bool, position: int) -> Any:
    if spec.kind is Kind.ENUM:
        assert spec.values is not None
        if quoted or raw not in spec.values:
            accepted = ", ".join(sorted(v for v in spec.values if v == spec.values[v]))
            raise _fault(position, f"{name} is one of {accepted}, not {raw[:40]!r}")
        return spec.values[raw]
    if spec.kind is Kind.BOOL:
        if quoted or raw not in ("true", "false"):
            raise _fault(position, f"{name} is true or false, not {raw[:40]!r}")
        return raw == "true"
    if spec.kind is Kind.INT:
        if quoted or not re.fullmatch(r"-?\d{1,18}", raw):
            raise _fault(position, f"{name} is an integer, not {raw[:40]!r}")
        return int(raw)
    if spec.kind is Kind.TIME:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            raise _fault(
                position,
                f'{name} is an RFC 3339 time such as "2026-01-01T00:00:00Z", not {raw[:40]!r}',
            )
        return moment.astimezone(UTC)
    return raw


def parse(text: str, fields: Mapping[str, Field]) -> list[Condition]:
    """The conditions of ``text`` (none for an empty filter), checked against
    the List's ``fields``."""
    if not text.strip():
        return []
    if len(text) > MAX_FILTER:
        raise invalid_field("filter", f"longer than {MAX_FILTER} characters")
    tokens = _tokens(text)
    end = ("end", "the end of the filter", len(text))

    def at(index: int) -> tuple[str, str, int]:
        return tokens[index] if index < len(tokens) else end

    conditions: list[Condition] = []
    i = 0
    while True:
        (k1, name, p1), (k2, op, p2), (k3, raw, p3) = at(i), at(i + 1), at(i + 2)
        if k1 == "end":
            raise _fault(p1, "expected a comparison such as state = ACTIVE")
        if k1 != "word" or name in _RESERVED or not _FIELD.match(name):
            raise _fault(p1, f"expected a field name, found {name[:40]!r}")
        if name not in fields:
            accepted = ", ".join(sorted(fields)) or "none"
            raise _fault(p1, f"{name[:40]!r} cannot be filtered on (fields: {accepted})")
        if k2 != "op":
            raise _fault(p2, f"expected an operator (= != < <= > >=), found {op[:40]!r}")
        spec = fields[name]
        allowed = _ORDERED if spec.kind in (Kind.TIME, Kind.INT) else _EQUALITY
        if op not in allowed:
            raise _fault(p2, f"{name} allows only {' '.join(sorted(allowed))}")
        if k3 == "string":
            value = _value(spec, name, _unquote(raw), True, p3)
        elif k3 == "word" and raw not in _RESERVED:
            value = _value(spec, name, raw, False, p3)
        else:
            raise _fault(p3, f"expected a value, found {raw[:40]!r}")
        conditions.append(Condition(name, op, value))
        if len(conditions) > MAX_CONDITIONS:
            raise invalid_field("filter", f"more than {MAX_CONDITIONS} comparisons")
        i += 3
        if i == len(tokens):
            return conditions
        kind, word, position = tokens[i]
        if kind == "word" and word in ("OR", "NOT"):
            raise _fault(position, f"{word} is not supported; join comparisons with AND")
        if kind != "word" or word != "AND":
            raise _fault(position, f"expected AND, found {word[:40]!r}")
        i += 1


def _unquote(raw: str) -> str:
    return re.sub(r"\\(.)", r"\1", raw[1:-1])


def key(conditions: Sequence[Condition]) -> list[str]:
    """A stable text form of the conditions, for page tokens."""
    return [f"{c.field}{c.op}{c.value!r}" for c in conditions]


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def matches(conditions: Sequence[Condition], values: Mapping[str, Any]) -> bool:
    """True when an item whose fields are ``values`` meets every condition
    (for lists a service holds in memory). An unset time meets none."""
    for c in conditions:
        value = values[c.field]
        if value is None or not _COMPARE[c.op](value, c.value):
            return False
    return True

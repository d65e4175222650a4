"""What the CLI prints: tables (rich) for people, ``--json`` for scripts.

A list of plans, freezes, executions or orders is a table with one row per
item; a single resource is a two-column table of its fields, its etag shown
(the state-changing commands ask for it back). Enums print without their
prefix (ACTIVE, not PLAN_STATE_ACTIVE)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.type.decimal_pb2 import Decimal
from rich.console import Console
from rich.table import Table

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2
from govex.governance.v1 import plan_pb2


def short(message: Message, field: str) -> str:
    """An enum field's value without its type prefix."""
    descriptor = message.DESCRIPTOR.fields_by_name[field].enum_type
    assert descriptor is not None, f"{field} is not an enum"
    name = descriptor.values_by_number[getattr(message, field)].name
    prefix = _prefix(descriptor.values[0].name)
    return name.removeprefix(prefix)


def _prefix(unspecified: str) -> str:
    return unspecified.removesuffix("UNSPECIFIED")


def when(message: Message, field: str) -> str:
    """A timestamp field as ISO text (empty when unset)."""
    if not message.HasField(field):
        return ""
    stamp: Any = getattr(message, field)
    return str(stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ"))


def as_json(message: Message | Sequence[Message]) -> str:
    """The message(s) as JSON, field names as in the contract."""
    if isinstance(message, Message):
        return json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2)
    return json.dumps(
        [MessageToDict(m, preserving_proto_field_name=True) for m in message], indent=2
    )


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, header_style="bold")
    for index, column in enumerate(columns):
        # The first column is a name people copy: never cut, never folded.
        table.add_column(column, no_wrap=index == 0, overflow="fold")
    return table


def plans(items: Sequence[plan_pb2.Plan]) -> Table:
    table = _table("NAME", "STATE", "TARGETS", "PROPOSED BY", "UPDATED", "ETAG")
    for p in items:
        targets = " ".join(f"{t.asset}={t.weight_percent:g}" for t in p.targets)
        table.add_row(
            p.name, short(p, "state"), targets, p.proposed.principal, when(p, "update_time"), p.etag
        )
    return table


def freezes(items: Sequence[freeze_pb2.Freeze]) -> Table:
    table = _table("NAME", "TYPE", "REASON", "BY", "EXPIRES", "ENDED")
    for f in items:
        ended = f"{short(f, 'end')} by {f.ended_by}" if f.HasField("end_time") else ""
        table.add_row(f.name, short(f, "type"), f.reason, f.actor, when(f, "expire_time"), ended)
    return table


def executions(items: Sequence[execution_pb2.Execution]) -> Table:
    table = _table("NAME", "PLAN", "STATE", "FILLED", "ORDERS", "STARTED", "REASON")
    for e in items:
        counts = " ".join(
            f"{execution_pb2.OrderState.Name(c.state).removeprefix('ORDER_STATE_')}={c.count}"
            for c in e.order_counts
        )
        table.add_row(
            e.name,
            e.plan,
            short(e, "state") + (" (dry run)" if e.dry_run else ""),
            f"{filled_percent(e):.0f}%",
            counts,
            when(e, "create_time"),
            e.state_reason,
        )
    return table


def filled_percent(execution: execution_pb2.Execution) -> float:
    """Filled notional over the notional to trade, of the legs not skipped."""
    legs = [leg for leg in execution.legs if not leg.skipped]
    total = sum(float(leg.notional.value or 0) for leg in legs)
    done = sum(float(leg.filled_notional.value or 0) for leg in legs)
    return 100.0 if total == 0 else min(100.0, 100 * done / total)


def legs(execution: execution_pb2.Execution) -> Table:
    table = _table("LEG", "SYMBOL", "SIDE", "NOTIONAL", "FILLED", "SLICES", "NOTE")
    for leg in execution.legs:
        table.add_row(
            str(leg.index),
            leg.symbol,
            short(leg, "side"),
            leg.notional.value,
            leg.filled_notional.value,
            str(leg.slice_count),
            leg.skip_reason if leg.skipped else "",
        )
    return table


def orders(items: Sequence[execution_pb2.Order]) -> Table:
    table = _table("ORDER", "SYMBOL", "SIDE", "QTY", "PRICE", "FILLED", "STATE", "REASON")
    for o in items:
        table.add_row(
            o.client_order_id,
            o.symbol,
            short(o, "side"),
            o.quantity.value,
            o.price.value,
            o.filled_quantity.value,
            short(o, "state"),
            o.state_reason,
        )
    return table


def fields(message: Message) -> Table:
    """One resource or response: its set fields, nested ones as compact JSON."""
    table = _table("FIELD", "VALUE")
    for descriptor, value in message.ListFields():
        if descriptor.enum_type is not None and not _repeated(descriptor):
            shown = short(message, descriptor.name)
        elif isinstance(value, Timestamp):
            shown = when(message, descriptor.name)
        elif isinstance(value, Duration):
            shown = f"{value.ToTimedelta().total_seconds():g}s"
        elif isinstance(value, Decimal):
            shown = value.value
        elif isinstance(value, Message):
            shown = json.dumps(MessageToDict(value, preserving_proto_field_name=True))
        elif _repeated(descriptor):
            shown = json.dumps(
                [
                    MessageToDict(v, preserving_proto_field_name=True)
                    if isinstance(v, Message)
                    else v
                    for v in value
                ]
            )
        else:
            shown = str(value)
        table.add_row(descriptor.name, shown)
    return table


def _repeated(descriptor: Any) -> bool:
    return bool(descriptor.is_repeated)


def field_text(output: Message | Sequence[Message], path: str) -> str:
    """One field (dotted path) of the answer as plain text (a list: one line
    per item); a ValueError naming the fields there are when it is absent."""
    items = [output] if isinstance(output, Message) else list(output)
    lines = []
    for item in items:
        value: Any = MessageToDict(item, preserving_proto_field_name=True)
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                known = ", ".join(sorted(value)) if isinstance(value, dict) else "none"
                raise ValueError(f"--field {path!r}: no {part!r} in the answer (there: {known})")
            value = value[part]
        lines.append(value if isinstance(value, str) else json.dumps(value))
    return "\n".join(lines)


def show(console: Console, output: Message | Sequence[Message], as_json_text: bool) -> None:
    """Prints ``output`` as a table, or as JSON."""
    if as_json_text:
        print(as_json(output))
        return
    if isinstance(output, Message):
        console.print(fields(output))
        if isinstance(output, execution_pb2.Execution) and output.legs:
            console.print(legs(output))
        return
    items = list(output)
    if not items:
        console.print("(none)")
        return
    first = items[0]
    if isinstance(first, plan_pb2.Plan):
        console.print(plans(items))  # type: ignore[arg-type]
    elif isinstance(first, freeze_pb2.Freeze):
        console.print(freezes(items))  # type: ignore[arg-type]
    elif isinstance(first, execution_pb2.Execution):
        console.print(executions(items))  # type: ignore[arg-type]
    elif isinstance(first, execution_pb2.Order):
        console.print(orders(items))  # type: ignore[arg-type]
    else:
        for item in items:
            console.print(fields(item))

"""``govex watch``: live views. On a terminal, a rich view redrawn as events
arrive (a freezes banner, a progress bar of filled notional per execution,
the legs and the latest orders); otherwise (a pipe, a script) one line per
event, or one JSON object per line with --json. Watching one execution ends
when it ends, also when it had ended before the watch began."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from google.protobuf.message import Message
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2
from govex.governance.v1 import events_pb2
from govex_client.cli.render import as_json, legs, orders, short
from govex_client.client import GovexClient
from govex_client.errors import GovexRpcError

ENDED = {
    execution_pb2.EXECUTION_STATE_SUCCEEDED,
    execution_pb2.EXECUTION_STATE_PARTIALLY_FILLED,
    execution_pb2.EXECUTION_STATE_FAILED,
    execution_pb2.EXECUTION_STATE_CANCELLED,
    execution_pb2.EXECUTION_STATE_SIMULATED,
}
SHOWN_ORDERS = 12


@dataclass
class Desk:
    """What the live view shows."""

    executions: dict[str, execution_pb2.Execution] = field(default_factory=dict)
    orders: dict[str, execution_pb2.Order] = field(default_factory=dict)
    freezes: dict[str, freeze_pb2.Freeze] = field(default_factory=dict)

    def filled(self, execution: str) -> tuple[float, float]:
        """Filled and total notional of ``execution`` (legs not skipped)."""
        shown = self.executions.get(execution)
        total = sum(
            float(leg.notional.value or 0)
            for leg in (shown.legs if shown else ())
            if not leg.skipped
        )
        done = sum(
            float(o.filled_quantity.value or 0) * float(o.average_price.value or o.price.value or 0)
            for o in self.orders.values()
            if o.name.startswith(execution + "/")
        )
        return done, total

    def view(self) -> Group:
        parts: list[object] = []
        if self.freezes:
            text = ", ".join(f"{short(f, 'type')} ({f.reason})" for f in self.freezes.values())
            parts.append(Panel(f"FROZEN: {text}", style="bold white on red"))
        for name, execution in self.executions.items():
            done, total = self.filled(name)
            bar = ProgressBar(total=total or 1, completed=min(done, total) if total else 1)
            parts.append(f"{name} {short(execution, 'state')}: {done:,.2f} of {total:,.2f} filled")
            parts.append(bar)
            parts.append(legs(execution))
        recent = list(self.orders.values())[-SHOWN_ORDERS:]
        parts.append(orders(recent) if recent else "(no orders yet)")
        return Group(*parts)  # type: ignore[arg-type]


def _line(message: Message) -> str:
    """One event as a line of text."""
    if isinstance(message, execution_pb2.OrderEvent):
        o = message.order
        return (
            f"seq={message.sequence} order {o.client_order_id} {short(o, 'side')} {o.symbol} "
            f"{o.filled_quantity.value}/{o.quantity.value} {short(o, 'state')}"
        )
    if isinstance(message, execution_pb2.ExecutionEvent):
        e = message.execution
        return (
            f"seq={message.sequence} execution {e.name} {short(message, 'type')}: "
            f"{short(e, 'state')} {e.state_reason}".rstrip()
        )
    assert isinstance(message, events_pb2.GovernanceEvent)
    return f"seq={message.sequence} {short(message, 'kind')} {message.resource} by {message.actor}"


async def watch_orders(
    client: GovexClient, execution: str, console: Console, as_json_text: bool
) -> int:
    """Follows orders (of ``execution``, or of all) until it ends or Ctrl-C."""
    desk = Desk()
    if execution:
        current = await client.get_execution(execution)
        desk.executions[execution] = current
        if current.state in ENDED:
            # Ended before the watch began: what it did, then how it ended.
            done = await client.list_orders(execution)
            if as_json_text:
                for order in done:
                    print(as_json(order).replace("\n", ""))
            else:
                console.print(orders(done) if done else "(no orders)")
            console.print(f"execution ended: {short(current, 'state')} {current.state_reason}")
            return 0
    for f in await client.list_freezes():
        desk.freezes[f.name] = f
    live = Live(desk.view(), console=console, auto_refresh=False) if console.is_terminal else None
    freezes = asyncio.create_task(_follow_freezes(client, desk, live))
    try:
        if live is not None:
            live.start()
        async for message in client.watch_orders(execution, from_oldest=bool(execution)):
            kind = message.WhichOneof("message")
            if kind == "heartbeat":
                continue
            event: Message = message.event if kind == "event" else message.execution_event
            if kind == "event":
                desk.orders[message.event.order.client_order_id] = message.event.order
            else:
                changed = message.execution_event.execution
                desk.executions[changed.name] = changed
            if live is not None:
                live.update(desk.view(), refresh=True)
            elif as_json_text:
                print(as_json(event).replace("\n", ""), flush=True)
            else:
                print(_line(event), flush=True)
            if (
                kind == "execution_event"
                and execution
                and message.execution_event.type == execution_pb2.EXECUTION_EVENT_TYPE_ENDED
            ):
                ended = message.execution_event.execution
                console.print(f"execution ended: {short(ended, 'state')} {ended.state_reason}")
                return 0
        return 0
    finally:
        freezes.cancel()
        if live is not None:
            live.stop()


async def _follow_freezes(client: GovexClient, desk: Desk, live: Live | None) -> None:
    """Keeps the banner current; a refused freeze stream leaves the banner as
    it was read at the start (the orders are what was asked for)."""
    try:
        await _freeze_changes(client, desk, live)
    except GovexRpcError:
        return


async def _freeze_changes(client: GovexClient, desk: Desk, live: Live | None) -> None:
    async for message in client.watch_freeze_events():
        if message.WhichOneof("message") != "event":
            continue
        freeze = message.event.freeze
        if freeze.HasField("end_time"):
            desk.freezes.pop(freeze.name, None)
        else:
            desk.freezes[freeze.name] = freeze
        if live is not None:
            live.update(desk.view(), refresh=True)


async def watch_events(
    client: GovexClient, freezes_only: bool, as_json_text: bool, after: int, from_oldest: bool
) -> int:
    """Prints governance (or only freeze) events as they come, until Ctrl-C."""
    stream = (
        client.watch_freeze_events(after, from_oldest=from_oldest)
        if freezes_only
        else client.watch_governance_events(after, from_oldest=from_oldest)
    )
    async for message in stream:
        if message.WhichOneof("message") != "event":
            continue
        print(
            as_json(message.event).replace("\n", "") if as_json_text else _line(message.event),
            flush=True,
        )
    return 0

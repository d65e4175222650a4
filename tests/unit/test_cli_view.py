"""The live view of ``govex watch orders``: the freezes banner, the filled
notional per execution (from the orders' fills), the legs and the orders,
drawn as a terminal would show them."""

from __future__ import annotations

import pytest
from rich.console import Console

from govex.controls.v1 import freeze_pb2
from govex.execution.v1 import execution_pb2 as ES
from govex_client.cli.commands import duration, enum, targets
from govex_client.cli.errors import UsageError
from govex_client.cli.watch import Desk


def _render(desk: Desk) -> str:
    console = Console(record=True, width=160, force_terminal=True, color_system=None)
    console.print(desk.view())
    return console.export_text()


def _execution() -> ES.Execution:
    execution = ES.Execution(name="executions/1", state=ES.EXECUTION_STATE_RUNNING)
    execution.legs.add(index=0, symbol="BTC/USDT", side=ES.ORDER_SIDE_BUY).notional.value = "1000"
    skipped = execution.legs.add(index=1, symbol="ETH/USDT", skipped=True, skip_reason="small")
    skipped.notional.value = "50"
    return execution


def test_progress_is_the_filled_notional_of_the_legs_not_skipped() -> None:
    desk = Desk()
    desk.executions["executions/1"] = _execution()
    order = ES.Order(name="executions/1/orders/a", client_order_id="gx-a", symbol="BTC/USDT")
    order.filled_quantity.value = "0.005"
    order.average_price.value = "50000"
    order.price.value = "50100"
    desk.orders["gx-a"] = order
    other = ES.Order(name="executions/2/orders/b", client_order_id="gx-b")  # another execution
    other.filled_quantity.value = "1"
    other.price.value = "999"
    desk.orders["gx-b"] = other
    assert desk.filled("executions/1") == (250.0, 1000.0)  # at the average price, not the limit
    text = _render(desk)
    assert "executions/1 RUNNING: 250.00 of 1,000.00 filled" in text
    assert "gx-a" in text and "small" in text  # the orders and the skipped leg's reason
    assert "FROZEN" not in text


def test_a_freeze_is_a_banner_above_everything() -> None:
    desk = Desk()
    desk.freezes["freezes/1"] = freeze_pb2.Freeze(
        name="freezes/1", type=freeze_pb2.FREEZE_TYPE_FULL_FREEZE, reason="drill"
    )
    text = _render(desk)
    assert text.lstrip().startswith("╭") and "FROZEN: FULL_FREEZE (drill)" in text


def test_command_line_values_are_parsed_or_refused_with_the_choices() -> None:
    assert duration("90s").total_seconds() == 90
    assert duration("2h").total_seconds() == 7200
    with pytest.raises(UsageError, match="like 30m"):
        duration("soon")
    assert enum(freeze_pb2.FreezeType, "FREEZE_TYPE_", "full_freeze", "type") == 1
    with pytest.raises(UsageError, match="FULL_FREEZE, S3_ALERT_FREEZE, ERROR_FREEZE"):
        enum(freeze_pb2.FreezeType, "FREEZE_TYPE_", "total", "freeze type")
    assert targets(["BTC=60", "USDT=40"]) == [("BTC", 60.0), ("USDT", 40.0)]
    with pytest.raises(UsageError, match="ASSET=WEIGHT"):
        targets(["BTC"])

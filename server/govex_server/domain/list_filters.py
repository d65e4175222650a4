"""The fields each List request can filter on (AIP-160, see filters.py)."""

from __future__ import annotations

from govex_server.domain.execution.legs import Side
from govex_server.domain.execution.orders import OrderState
from govex_server.domain.execution.records import ExecutionState
from govex_server.domain.filters import Field, Kind, enum_field
from govex_server.domain.freezes import FreezeType
from govex_server.domain.governance import GovernanceMode
from govex_server.domain.plans import PlanState

TIME = Field(Kind.TIME)
STRING = Field(Kind.STRING)

PLANS = {
    "state": enum_field("PLAN_STATE_", (s.value for s in PlanState)),
    "proposed_under_mode": enum_field("GOVERNANCE_MODE_", (m.value for m in GovernanceMode)),
    "create_time": TIME,
    "update_time": TIME,
}
FREEZES = {
    "type": enum_field("FREEZE_TYPE_", (t.value for t in FreezeType)),
    "actor": STRING,
    "create_time": TIME,
    "expire_time": TIME,
    "end_time": TIME,
}
EXECUTIONS = {
    "state": enum_field("EXECUTION_STATE_", (s.value for s in ExecutionState)),
    "plan": STRING,  # "plans/{plan}"
    "exchange": STRING,  # "exchanges/{exchange}"
    "create_time": TIME,
    "end_time": TIME,
}
ORDERS = {
    "state": enum_field("ORDER_STATE_", (s.value for s in OrderState)),
    "side": enum_field("ORDER_SIDE_", (s.value for s in Side)),
    "symbol": STRING,
    "create_time": TIME,
    "update_time": TIME,
}
EXCHANGES = {
    "kind": enum_field("EXCHANGE_KIND_", ("PAPER", "CCXT")),
    "sandbox": Field(Kind.BOOL),
    "ccxt_id": STRING,
    "quote_currency": STRING,
}
SIGNAL_SETS = {
    "as_of": TIME,
    "publisher": STRING,
}
AUDIT_RECORDS = {
    "rpc": STRING,
    "resource": STRING,
    "principal": STRING,
    "principal_kind": enum_field("", ("human", "ai", "system")),
    "sequence": Field(Kind.INT),
    "time": TIME,
}

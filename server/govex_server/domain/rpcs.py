"""Every RPC of the contract, in one table: the roles it needs and whether it
mutates. The server's interceptor reads it for every call, so an RPC that is
missing here cannot be called at all (fail closed), and a mutating one gets
identity, idempotency and audit from the same place as all the others."""

from __future__ import annotations

from dataclasses import dataclass

from govex_server.domain.principals import Role

ANY_ROLE = frozenset(Role)
GOVERNANCE = "govex.governance.v1.GovernanceService"
EXECUTION = "govex.execution.v1.ExecutionService"


@dataclass(frozen=True)
class RpcSpec:
    """What the interceptor needs to know about one RPC."""

    roles: frozenset[Role]
    # A mutating RPC takes a request_id, replays its first response and
    # writes an audit record in the transaction of its change.
    mutating: bool = False


def _reads(*roles: Role) -> RpcSpec:
    return RpcSpec(frozenset(roles) if roles else ANY_ROLE - {Role.AUDITOR})


def _writes(*roles: Role) -> RpcSpec:
    return RpcSpec(frozenset(roles), mutating=True)


# "Service/Method" -> spec. Reads are open to every principal that works the
# desk; the auditor role reads the audit log and nothing else.
RPCS: dict[str, RpcSpec] = {
    f"{GOVERNANCE}/GetGovernanceState": _reads(),
    f"{GOVERNANCE}/GetSignals": _reads(),
    f"{GOVERNANCE}/ListSignals": _reads(),
    f"{GOVERNANCE}/PublishSignals": _writes(Role.SIGNAL_PUBLISHER),
    f"{GOVERNANCE}/ProposePlan": _writes(Role.PROPOSER),
    f"{GOVERNANCE}/GetPlan": _reads(),
    f"{GOVERNANCE}/ListPlans": _reads(),
    f"{GOVERNANCE}/UpdatePlan": _writes(Role.PROPOSER),
    f"{GOVERNANCE}/ReviewPlan": _writes(Role.REVIEWER),
    f"{GOVERNANCE}/ApprovePlan": _writes(Role.APPROVER),
    f"{GOVERNANCE}/RejectPlan": _writes(Role.APPROVER),
    f"{GOVERNANCE}/ActivatePlan": _writes(Role.APPROVER, Role.OPERATOR, Role.ADMIN),
    f"{GOVERNANCE}/ExecutePlan": _writes(Role.OPERATOR),
    f"{GOVERNANCE}/CancelPlan": _writes(Role.PROPOSER, Role.APPROVER, Role.OPERATOR, Role.ADMIN),
    f"{GOVERNANCE}/Freeze": _writes(Role.OPERATOR),
    f"{GOVERNANCE}/Unfreeze": _writes(Role.OPERATOR),
    f"{GOVERNANCE}/GetFreeze": _reads(),
    f"{GOVERNANCE}/ListFreezes": _reads(),
    f"{GOVERNANCE}/CheckOperation": _reads(),
    f"{GOVERNANCE}/SetGovernanceMode": _writes(Role.ADMIN),
    f"{GOVERNANCE}/GetCooldownStatus": _reads(),
    f"{GOVERNANCE}/ValidateAllocation": _reads(),
    f"{GOVERNANCE}/WatchFreezeEvents": _reads(),
    f"{GOVERNANCE}/WatchGovernanceEvents": _reads(),
    f"{GOVERNANCE}/ListAuditRecords": _reads(Role.ADMIN, Role.AUDITOR),
    f"{EXECUTION}/ExecutePlan": _writes(Role.OPERATOR),
    f"{EXECUTION}/ValidatePlan": _reads(),
    f"{EXECUTION}/CancelExecution": _writes(Role.OPERATOR),
    f"{EXECUTION}/GetExecution": _reads(),
    f"{EXECUTION}/ListExecutions": _reads(),
    f"{EXECUTION}/ListOrders": _reads(),
    f"{EXECUTION}/GetExchange": _reads(),
    f"{EXECUTION}/ListExchanges": _reads(),
    f"{EXECUTION}/ConnectExchange": _writes(Role.OPERATOR, Role.ADMIN),
    f"{EXECUTION}/WatchOrders": _reads(),
}


def short_name(rpc: str) -> str:
    """``ProposePlan`` for ``govex.governance.v1.GovernanceService/ProposePlan``;
    the execution service's ExecutePlan keeps its service to stay distinct."""
    service, _, method = rpc.rpartition("/")
    if service == EXECUTION and f"{GOVERNANCE}/{method}" in RPCS:
        return f"ExecutionService.{method}"
    return method


def may_call(roles: frozenset[Role], method: str) -> bool:
    """True when a principal with ``roles`` may call GovernanceService's
    ``method`` (auto-advance asks this before each step it takes)."""
    return not roles.isdisjoint(RPCS[f"{GOVERNANCE}/{method}"].roles)

"""Authentication (bearer token -> principal) and the roles each RPC needs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from govex_server.domain.errors import Category, GovexError
from govex_server.domain.principals import Principal, Role

ANY_ROLE = frozenset(Role)

# RPC name -> roles of which the caller needs at least one. Reads are open to
# every authenticated principal; each mutation names its roles.
RPC_ROLES: dict[str, frozenset[Role]] = {
    # governance.v1
    "GetGovernanceState": ANY_ROLE,
    "GetSignals": ANY_ROLE,
    "PublishSignals": frozenset({Role.SIGNAL_PUBLISHER}),
    "ProposePlan": frozenset({Role.PROPOSER}),
    "GetPlan": ANY_ROLE,
    "ListPlans": ANY_ROLE,
    "UpdatePlan": frozenset({Role.PROPOSER}),
    "ReviewPlan": frozenset({Role.REVIEWER}),
    "ApprovePlan": frozenset({Role.APPROVER}),
    "RejectPlan": frozenset({Role.APPROVER}),
    "ActivatePlan": frozenset({Role.APPROVER, Role.OPERATOR, Role.ADMIN}),
    "ExecutePlan": frozenset({Role.OPERATOR}),
    "CancelPlan": frozenset({Role.PROPOSER, Role.APPROVER, Role.OPERATOR, Role.ADMIN}),
    "Freeze": frozenset({Role.OPERATOR}),
    "Unfreeze": frozenset({Role.OPERATOR}),
    "ListFreezes": ANY_ROLE,
    "CheckOperation": ANY_ROLE,
    "SetGovernanceMode": frozenset({Role.ADMIN}),
    "GetCooldownStatus": ANY_ROLE,
    "ValidateAllocation": ANY_ROLE,
    "WatchFreezeEvents": ANY_ROLE,
    "WatchGovernanceEvents": ANY_ROLE,
    # execution.v1
    "ValidatePlan": ANY_ROLE,
    "CancelExecution": frozenset({Role.OPERATOR}),
    "GetExecution": ANY_ROLE,
    "ListExecutions": ANY_ROLE,
    "ListOrders": ANY_ROLE,
    "ListExchanges": ANY_ROLE,
    "ConnectExchange": frozenset({Role.OPERATOR, Role.ADMIN}),
    "WatchOrders": ANY_ROLE,
}


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a bearer token, as the principals file stores it."""
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Maps ``authorization: Bearer <token>`` metadata to a principal."""

    def __init__(self, principals_by_hash: Mapping[str, Principal]) -> None:
        self._by_hash = dict(principals_by_hash)

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
        """The caller, or UNAUTHENTICATED."""
        header = ""
        for key, value in metadata or ():
            if key.lower() == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
                break
        if not header:
            raise GovexError(
                Category.UNAUTHENTICATED,
                "MISSING_CREDENTIALS",
                "no credentials: send 'authorization: Bearer <token>' metadata",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GovexError(
                Category.UNAUTHENTICATED,
                "BAD_CREDENTIALS",
                "the authorization metadata must be 'Bearer <token>'",
            )
        # A lookup by the token's SHA-256: its timing tells an attacker about
        # the hash of the guess, never about a stored token.
        principal = self._by_hash.get(token_sha256(token.strip()))
        if principal is not None:
            return principal
        raise GovexError(Category.UNAUTHENTICATED, "UNKNOWN_TOKEN", "the bearer token is not known")

    def authorize(self, rpc: str, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
        """The caller, if it holds one of the roles ``rpc`` needs."""
        principal = self.authenticate(metadata)
        needed = RPC_ROLES[rpc]
        if not principal.has_any(needed):
            raise GovexError(
                Category.PERMISSION_DENIED,
                "ROLE_REQUIRED",
                f"{rpc} needs one of the roles {', '.join(sorted(r.value for r in needed))}; "
                f"{principal.name} has {', '.join(sorted(r.value for r in principal.roles))}",
                metadata={"rpc": rpc, "requiredRoles": ",".join(sorted(r.value for r in needed))},
            )
        return principal

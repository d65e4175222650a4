"""A typed async client for govex: one config, one error type, deadlines and
retries in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from govex.execution.v1 import execution_service_pb2_grpc
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import governance_service_pb2_grpc, governance_state_pb2, plan_pb2
from govex_client.errors import GovexRpcError

Resp = TypeVar("Resp", bound=Message)

# Only these are safe to retry blindly; mutations are retried only when they
# carry a request_id, which makes the server answer a repeat with the first
# response instead of acting twice.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True)
class ClientConfig:
    """Where govex is and who is calling."""

    target: str = "127.0.0.1:50051"
    token: str = ""
    timeout_seconds: float = 10.0
    retries: int = 3
    retry_backoff_seconds: float = 0.2
    # TLS: the CA that signed the server's certificate (empty: plaintext),
    # and for mTLS this client's certificate and key (the certificate may
    # name the principal instead of a token).
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def channel(self) -> grpc.aio.Channel:
        """A channel to ``target``: TLS when ``ca_file`` is set."""
        if not self.ca_file:
            if self.cert_file or self.key_file:
                raise ValueError("a client certificate needs ca_file (TLS) too")
            return grpc.aio.insecure_channel(self.target)

        def read(path: str) -> bytes | None:
            if not path:
                return None
            with open(path, "rb") as file:
                return file.read()

        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together")
        credentials = grpc.ssl_channel_credentials(
            read(self.ca_file), read(self.key_file), read(self.cert_file)
        )
        return grpc.aio.secure_channel(self.target, credentials)


class GovexClient:
    """Governance (and later execution) calls with the bearer token, a
    deadline, retries of UNAVAILABLE, and errors as GovexRpcError."""

    def __init__(self, config: ClientConfig, channel: grpc.aio.Channel | None = None) -> None:
        self.config = config
        self.channel = channel or config.channel()
        self.governance = governance_service_pb2_grpc.GovernanceServiceStub(self.channel)
        self.execution = execution_service_pb2_grpc.ExecutionServiceStub(self.channel)

    async def close(self) -> None:
        """Closes the channel."""
        await self.channel.close()

    async def __aenter__(self) -> GovexClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata carrying the bearer token (none without one: a
        client certificate then says who is calling)."""
        if not self.config.token:
            return ()
        return (("authorization", f"Bearer {self.config.token}"),)

    async def call(
        self, method: Callable[..., Awaitable[Resp]], request: Message, *, idempotent: bool
    ) -> Resp:
        """Calls ``method``; retries UNAVAILABLE when ``idempotent``."""
        attempts = self.config.retries + 1 if idempotent else 1
        for attempt in range(attempts):
            try:
                return await method(
                    request, metadata=self.metadata, timeout=self.config.timeout_seconds
                )
            except grpc.RpcError as exc:
                error = GovexRpcError.from_rpc_error(exc)
                if error.code not in RETRYABLE or attempt == attempts - 1:
                    raise error from None
                await asyncio.sleep(self.config.retry_backoff_seconds * 2**attempt)
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- plans

    async def propose_plan(
        self, targets: Sequence[tuple[str, float]], reason: str = "", request_id: str = ""
    ) -> plan_pb2.Plan:
        """A new DRAFT plan."""
        request = gov.ProposePlanRequest(reason=reason, request_id=request_id)
        for asset, weight in targets:
            request.targets.add(asset=asset, weight_percent=weight)
        response = await self.call(
            self.governance.ProposePlan, request, idempotent=bool(request_id)
        )
        return response.plan

    async def get_plan(self, name: str) -> plan_pb2.Plan:
        """One plan."""
        response = await self.call(
            self.governance.GetPlan, gov.GetPlanRequest(name=name), idempotent=True
        )
        return response.plan

    async def list_plans(
        self, states: Sequence[plan_pb2.PlanState.ValueType] = (), page_size: int = 0
    ) -> list[plan_pb2.Plan]:
        """Every plan (following pages), newest first."""
        plans: list[plan_pb2.Plan] = []
        token = ""
        while True:
            request = gov.ListPlansRequest(states=states, page_size=page_size, page_token=token)
            response = await self.call(self.governance.ListPlans, request, idempotent=True)
            plans.extend(response.plans)
            token = response.next_page_token
            if not token:
                return plans

    async def advance(
        self, step: str, plan: plan_pb2.Plan, text: str = "", **extra: Any
    ) -> plan_pb2.Plan:
        """``review``, ``approve``, ``reject``, ``activate`` or ``cancel`` a plan
        at the etag it was read with."""
        rpcs: dict[str, tuple[Callable[..., Awaitable[Any]], type[Message], str]] = {
            "review": (self.governance.ReviewPlan, gov.ReviewPlanRequest, "comment"),
            "approve": (self.governance.ApprovePlan, gov.ApprovePlanRequest, "comment"),
            "reject": (self.governance.RejectPlan, gov.RejectPlanRequest, "reason"),
            "activate": (self.governance.ActivatePlan, gov.ActivatePlanRequest, "override_reason"),
            "cancel": (self.governance.CancelPlan, gov.CancelPlanRequest, "reason"),
        }
        if step not in rpcs:
            raise ValueError(f"unknown step {step!r}: one of {sorted(rpcs)}")
        method, request_type, text_field = rpcs[step]
        fields: dict[str, Any] = {"name": plan.name, "etag": plan.etag, **extra}
        if text:
            fields[text_field] = text
        response = await self.call(
            method, request_type(**fields), idempotent=bool(extra.get("request_id"))
        )
        result: plan_pb2.Plan = response.plan
        return result

    # ---------------------------------------------------------- governance

    async def governance_state(self) -> governance_state_pb2.GovernanceState:
        """The whole governance state."""
        response = await self.call(
            self.governance.GetGovernanceState, gov.GetGovernanceStateRequest(), idempotent=True
        )
        return response.state

    async def cooldown_status(self) -> governance_state_pb2.CooldownStatus:
        """When the next plan may be published."""
        response = await self.call(
            self.governance.GetCooldownStatus, gov.GetCooldownStatusRequest(), idempotent=True
        )
        return response.cooldown

    async def set_mode(
        self, mode: plan_pb2.GovernanceMode.ValueType, etag: str, reason: str = ""
    ) -> gov.SetGovernanceModeResponse:
        """Changes the governance mode (admin)."""
        request = gov.SetGovernanceModeRequest(mode=mode, etag=etag, reason=reason)
        return await self.call(self.governance.SetGovernanceMode, request, idempotent=False)

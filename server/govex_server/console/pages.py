"""The console's pages: each reads through the services the gRPC API's read
RPCs use and renders one template (the roles a page needs are checked
before, in app.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from govex_server.console.context import ConsoleServices, Renderer
from govex_server.console.permissions import execute_button, may_call, plan_buttons
from govex_server.console.views import progress
from govex_server.domain.errors import GovexError
from govex_server.domain.execution.records import LIVE
from govex_server.domain.freezes import Freeze, FreezeType
from govex_server.domain.plans import Plan, PlanState
from govex_server.services.planning import PlanValidation
from govex_server.store.audit_repositories import AuditQuery


class Pages:
    """GET handlers; the plan, freezes and execution pages also show an
    action's refusal (``error``) when an action re-renders them."""

    def __init__(self, services: ConsoleServices, render: Renderer) -> None:
        self._s = services
        self._render = render

    async def _banner(self) -> list[Freeze]:
        return await self._s.freezes.active()

    async def state(self, request: Request) -> Response:
        snapshot = await self._s.governance.snapshot()
        view = await self._s.policy.view()
        return self._render(
            request,
            "state.html",
            snapshot=snapshot,
            policy=view.policy,
            age=view.age,
            freshness=view.freshness.value,
            phase=view.phase,
            now=view.now,
            freezes=await self._banner(),
        )

    async def plans(self, request: Request, error: str = "", status: int = 200) -> Response:
        wanted = request.query_params.get("state", "")
        states = [PlanState(wanted)] if wanted in PlanState.__members__ else []
        page = await self._s.governance.list_plans(states, 100, "")
        return self._render(
            request,
            "plans.html",
            status,
            page_url="/plans",
            error=error,
            form=getattr(request.state, "form", {}),
            plans=page.plans,
            states=[s.value for s in PlanState],
            wanted=wanted,
            may_propose=not may_call(request.state.principal, "ProposePlan"),
            freezes=await self._banner(),
        )

    async def plan(self, request: Request, error: str = "", status: int = 200) -> Response:
        governance = self._s.governance
        plan = await governance.get_plan(f"plans/{request.path_params['plan_id']}")
        mode = await governance.mode()
        cooldown = await governance.cooldown_status()
        buttons = plan_buttons(plan, request.state.principal, mode.mode, cooldown)
        validation, unvalidated = await self._validation(plan)
        executions, _ = await self._s.engine.list_executions([], plan.name, 20, "")
        audited = []
        if not may_call(request.state.principal, "ListAuditRecords"):
            audited = (await self._s.audit.list(AuditQuery(resource=plan.name), 100, "")).records
        return self._render(
            request,
            "plan.html",
            status,
            page_url=f"/plans/{plan.id}",
            plan=plan,
            buttons=buttons,
            execute=execute_button(plan, request.state.principal, validation, unvalidated),
            validation=validation,
            unvalidated=unvalidated,
            executions=[(v.execution, progress(v.execution, v.orders)) for v in executions],
            audited=audited,
            error=error,
            freezes=await self._banner(),
        )

    async def _validation(self, plan: Plan) -> tuple[PlanValidation | None, str]:
        """What executing the plan would do now on the default account
        (ValidatePlan), or why that cannot be said (a finished plan, an
        exchange that does not answer)."""
        if plan.state in (PlanState.EXECUTED, PlanState.CANCELLED):
            return None, ""
        try:
            return await self._s.planner.validate(plan.name, "", None), ""
        except GovexError as refusal:
            return None, refusal.message

    async def freezes(self, request: Request, error: str = "", status: int = 200) -> Response:
        return self._render(
            request,
            "freezes.html",
            status,
            page_url="/freezes",
            freezes=await self._banner(),
            types=[t.value for t in FreezeType],
            may_freeze=not may_call(request.state.principal, "Freeze"),
            may_unfreeze=not may_call(request.state.principal, "Unfreeze"),
            error=error,
        )

    async def executions(self, request: Request) -> Response:
        views, _ = await self._s.engine.list_executions([], "", 100, "")
        rows = [(v.execution, progress(v.execution, v.orders)) for v in views]
        return self._render(request, "executions.html", rows=rows, freezes=await self._banner())

    async def execution(self, request: Request, error: str = "", status: int = 200) -> Response:
        view = await self._s.engine.get(f"executions/{request.path_params['execution_id']}")
        return self._render(
            request,
            "execution.html",
            status,
            page_url=f"/executions/{view.execution.id}",
            execution=view.execution,
            orders=view.orders,
            progress=progress(view.execution, view.orders),
            may_cancel=not may_call(request.state.principal, "CancelExecution")
            and view.execution.state in LIVE,
            error=error,
            freezes=await self._banner(),
        )

    async def audit(self, request: Request) -> Response:
        query = AuditQuery(
            resource=request.query_params.get("resource", ""),
            principal=request.query_params.get("principal", ""),
        )
        try:
            page = await self._s.audit.list(query, 200, "")
        except GovexError as refusal:
            return self._render(request, "denied.html", 400, why=refusal.message)
        verdict = await self._s.audit.check_tail(quiet=True)
        return self._render(
            request,
            "audit.html",
            page=page,
            verdict=verdict,
            query=query,
            freezes=await self._banner(),
        )

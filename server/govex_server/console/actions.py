"""The console's actions (POST): each goes through the service the gRPC
API uses, with a ``Call`` made here as the interceptor makes one: the RPC's
roles are checked first, the audit record and the events are written by the
service, and the form's hidden request_id makes a double click one action.
A refused action is shown on the page it came from with the service's
reason (a stale etag shows the new version). Each action is one log line
and one count in ``govex_console_actions_total{rpc,outcome}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from govex_server.console.context import ConsoleServices, plain
from govex_server.console.forms import parse_freeze, parse_targets
from govex_server.console.pages import Pages
from govex_server.console.permissions import ACTION_OF, RPC_OF, may_call
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.execution.records import Strategy
from govex_server.domain.plans import Plan
from govex_server.domain.principals import Principal
from govex_server.services.execution_views import ExecuteRequest, ExecutionView
from govex_server.services.recorder import Call

log = logging.getLogger("govex.console")
# What an action does with its Call; None when the request_id was done already.
Act = Callable[[Call], Awaitable[object]]


class Actions:
    """POST handlers."""

    def __init__(self, services: ConsoleServices, pages: Pages) -> None:
        self._s = services
        self._pages = pages

    async def _perform(self, request: Request, rpc: str, resource: str, act: Act) -> None:
        """Runs ``act`` as ``rpc`` for the signed-in principal: roles checked
        as the interceptor checks them, the form's request_id honoured (a
        double click, a resubmitted form is done once), logged and counted.
        A refusal is raised for the caller to show."""
        principal: Principal = request.state.principal
        outcome = "OK"
        try:
            if why := may_call(principal, rpc):
                raise GovexError(Category.PERMISSION_DENIED, "ROLE_REQUIRED", why)
            request_id = request.state.form.get("request_id", "")[:64]
            if request_id and await self._s.keys.first_response(principal.name, rpc, request_id):
                outcome = "REPLAYED"
                return
            call = Call(principal, rpc, request_id=request_id, fingerprint=f"console:{rpc}")
            call.respond = lambda result: b""  # the console re-reads; nothing to replay
            await act(call)
        except GovexError as refusal:
            outcome = refusal.reason
            raise
        except Exception:
            outcome = "INTERNAL"  # a bug: Starlette logs it and answers 500
            raise
        finally:
            self._s.metrics.console_actions.labels(rpc, outcome).inc()
            log.info(
                "console: %s %s %s",
                rpc,
                resource,
                outcome,
                extra={"fields": {"resource": resource, "outcome": outcome}},
            )

    async def plan_step(self, request: Request) -> Response:
        step = request.path_params["step"]
        if step not in RPC_OF:
            return plain(404, f"no step {step!r}")
        plan_id = request.path_params["plan_id"]
        name = f"plans/{plan_id}"
        form = request.state.form
        etag, text = form.get("etag", ""), form.get("text", "")
        actor = request.state.principal
        g = self._s.governance

        async def act(call: Call) -> object:
            if step == "review":
                return await g.review(actor, name, etag, text, call)
            if step == "approve":
                return await g.approve(actor, name, etag, text, call)
            if step == "reject":
                return await g.reject(actor, name, etag, text, call)
            if step == "activate":
                return await g.activate(actor, name, etag, False, "", call)
            return await g.cancel(actor, name, etag, text, call)

        try:
            await self._perform(request, RPC_OF[step], name, act)
        except GovexError as refusal:
            message = f"{ACTION_OF[step].value.title()} refused: {refusal.message}"
            return await self._pages.plan(request, message, 409)
        return RedirectResponse(f"/plans/{plan_id}", status_code=303)

    async def propose_plan(self, request: Request) -> Response:
        """ProposePlan from the targets typed in; then the new plan's page."""
        form = request.state.form
        proposed: list[Plan] = []

        async def act(call: Call) -> object:
            targets = parse_targets(form.get("targets", ""))
            plan = await self._s.governance.propose(
                request.state.principal, targets, form.get("reason", ""), call
            )
            proposed.append(plan)
            return plan

        try:
            await self._perform(request, "ProposePlan", "plans", act)
        except GovexError as refusal:
            return await self._pages.plans(request, f"Propose refused: {refusal.message}", 409)
        if not proposed:  # the form was sent twice: the list shows the plan
            return RedirectResponse("/plans", status_code=303)
        return RedirectResponse(f"/plans/{proposed[0].id}", status_code=303)

    async def execute_plan(self, request: Request) -> Response:
        """ExecutePlan on the default account, sequential, at the configured
        safety level (the API's defaults); then the execution's page."""
        plan_id = request.path_params["plan_id"]
        name = f"plans/{plan_id}"
        form = request.state.form
        order = ExecuteRequest(
            plan=name,
            etag=form.get("etag", ""),
            dry_run=form.get("dry_run") == "1",
            strategy=Strategy.SEQUENTIAL,
            max_parallel=0,
            exchange="",
            level=None,
        )
        started: list[ExecutionView] = []

        async def act(call: Call) -> object:
            started.append(await self._s.engine.execute(request.state.principal, order, call))
            return started[0]

        try:
            await self._perform(request, "ExecutePlan", name, act)
        except GovexError as refusal:
            return await self._pages.plan(request, f"Execute refused: {refusal.message}", 409)
        if not started:  # the form was sent twice: the plan's page shows its execution
            return RedirectResponse(f"/plans/{plan_id}", status_code=303)
        return RedirectResponse(f"/executions/{started[0].execution.id}", status_code=303)

    async def freeze(self, request: Request) -> Response:
        form = request.state.form

        async def act(call: Call) -> object:
            kind, ttl = parse_freeze(form.get("type", ""), form.get("ttl_minutes", "60"))
            reason = form.get("reason", "")
            return await self._s.freezes.freeze(
                request.state.principal, kind, reason, ttl, None, call
            )

        try:
            await self._perform(request, "Freeze", "freezes", act)
        except GovexError as refusal:
            return await self._pages.freezes(request, f"Freeze refused: {refusal.message}", 409)
        return RedirectResponse("/freezes", status_code=303)

    async def unfreeze(self, request: Request) -> Response:
        name = f"freezes/{request.path_params['freeze_id']}"
        reason = request.state.form.get("reason", "") or "lifted from the console"

        async def act(call: Call) -> object:
            return await self._s.freezes.unfreeze(
                request.state.principal, name, False, reason, call
            )

        try:
            await self._perform(request, "Unfreeze", name, act)
        except GovexError as refusal:
            return await self._pages.freezes(request, f"Unfreeze refused: {refusal.message}", 409)
        return RedirectResponse("/freezes", status_code=303)

    async def cancel_execution(self, request: Request) -> Response:
        execution_id = request.path_params["execution_id"]
        name = f"executions/{execution_id}"
        reason = request.state.form.get("reason", "") or "cancelled from the console"

        async def act(call: Call) -> object:
            return await self._s.engine.cancel(request.state.principal, name, reason, call)

        try:
            await self._perform(request, "CancelExecution", name, act)
        except GovexError as refusal:
            return await self._pages.execution(request, f"Cancel refused: {refusal.message}", 409)
        return RedirectResponse(f"/executions/{execution_id}", status_code=303)

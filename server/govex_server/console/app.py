"""The console's HTTP routes (Starlette): sign-in, the pages, the actions.

Every action goes through the service the gRPC API uses, with a ``Call``
made here as the interceptor makes one: the RPC's roles are checked first,
the audit record and the events are written by the service, and the form's
hidden request_id makes a double click one action. A refused action is shown
on the page it came from with the service's reason (a stale etag shows the
new version)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from govex_server import logs
from govex_server.api.auth import Authenticator, token_sha256
from govex_server.console.live import LiveEvents
from govex_server.console.permissions import ACTION_OF, RPC_OF, may_call, plan_buttons
from govex_server.console.views import progress
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.execution.records import LIVE
from govex_server.domain.freezes import FreezeType
from govex_server.domain.plans import Plan, PlanState
from govex_server.domain.principals import Principal
from govex_server.services.audit import AuditLog
from govex_server.services.engine import ExecutionEngine
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import GovernanceService
from govex_server.services.idempotency import IdempotencyKeys
from govex_server.services.planning import ExecutionPlanner, PlanValidation
from govex_server.services.policy import PolicyService
from govex_server.services.recorder import Call
from govex_server.store.audit_repositories import AuditQuery

log = logging.getLogger("govex.console")
HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]


class Console:
    """The pages and actions, bound to the services."""

    def __init__(
        self,
        auth: Authenticator,
        governance: GovernanceService,
        freezes: FreezeService,
        policy: PolicyService,
        live: LiveEvents,
        keys: IdempotencyKeys,
        engine: ExecutionEngine,
        audit: AuditLog,
        planner: ExecutionPlanner,
    ) -> None:
        self._planner = planner
        self._auth = auth
        self._keys = keys
        self._engine = engine
        self._audit = audit
        self._governance = governance
        self._freezes = freezes
        self._policy = policy
        self._live = live
        self._templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape()
        )

    # --------------------------------------------------------------- plumbing

    def app(self, secret: str, https: bool) -> Starlette:
        routes = [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.signed_in(self.logout), methods=["POST"]),
            Route("/", self.signed_in(self.state_page)),
            Route("/plans", self.signed_in(self.plans_page)),
            Route("/plans/{plan_id}", self.signed_in(self.plan_page)),
            Route("/plans/{plan_id}/{step}", self.signed_in(self.plan_step), methods=["POST"]),
            Route("/freezes", self.signed_in(self.freezes_page)),
            Route("/executions", self.signed_in(self.executions_page)),
            Route("/executions/{execution_id}", self.signed_in(self.execution_page)),
            Route(
                "/executions/{execution_id}/cancel",
                self.signed_in(self.cancel_execution),
                methods=["POST"],
            ),
            Route("/audit", self.signed_in(self.audit_page)),
            Route("/freezes", self.signed_in(self.freeze), methods=["POST"]),
            Route("/freezes/{freeze_id}/unfreeze", self.signed_in(self.unfreeze), methods=["POST"]),
            Route("/events", self.signed_in(self._live.stream)),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        session = Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="govex_console",
            same_site="strict",
            https_only=https,
            max_age=12 * 3600,
        )
        return Starlette(
            routes=routes,
            middleware=[session],
            exception_handlers={GovexError: self._refused},  # type: ignore[dict-item]
        )

    async def _refused(self, request: Request, refusal: GovexError) -> Response:
        """A page asked for something that is not there (a mistyped name)."""
        status = {Category.NOT_FOUND: 404, Category.INVALID_ARGUMENT: 400}.get(
            refusal.category, 409
        )
        return self._render(request, "denied.html", status, why=refusal.message)

    def signed_in(self, handler: Handler) -> Handler:
        """The page or action for the signed-in principal; others go to sign-in.
        A page needs the roles of the RPC that reads what it shows; a POST
        must carry the session's CSRF token."""

        async def guarded(request: Request) -> Response:
            principal = self._principal(request)
            if principal is None:
                if request.method == "GET" and request.url.path != "/events":
                    return RedirectResponse("/login", status_code=303)
                return _plain(401, "sign in first")
            request.state.principal = principal
            reads = _READS.get(request.url.path.split("/")[1])
            if request.method == "GET" and reads and (why := may_call(principal, reads)):
                return self._render(request, "denied.html", 403, why=why)
            logs.bind(principal=principal.name, rpc=f"console {request.url.path}")
            if request.method == "POST":
                form = await _form(request)
                request.state.form = form
                if not secrets.compare_digest(form.get("csrf", ""), _csrf(request)):
                    log.warning("console: POST without a valid CSRF token refused")
                    return _plain(403, "the form is stale or forged (CSRF token missing)")
            return await handler(request)

        return guarded

    def _principal(self, request: Request) -> Principal | None:
        digest = request.session.get("token_sha256")
        if not digest:
            return None
        # The principals in force now: a reload that removed one signs it out.
        principal = self._auth.by_token_hash(str(digest))
        if principal is None:
            request.session.clear()
        return principal

    def _render(
        self, request: Request, template: str, status: int = 200, **values: Any
    ) -> Response:
        principal: Principal | None = getattr(request.state, "principal", None)
        values.setdefault("page_url", request.url.path)
        body = self._templates.get_template(template).render(
            principal=principal,
            csrf=_csrf(request) if principal else "",
            request_id=secrets.token_hex(12),
            **values,
        )
        return HTMLResponse(body, status_code=status)

    async def _banner(self) -> list[Any]:
        return await self._freezes.active()

    # ------------------------------------------------------------ sign-in

    async def login_page(self, request: Request) -> Response:
        return self._render(request, "login.html", error="")

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        token = form.get("token", "").strip()
        try:
            principal = self._auth.authenticate((("authorization", f"Bearer {token}"),))
        except GovexError:
            log.info("console: sign-in refused (unknown token)")
            return self._render(request, "login.html", 401, error="That token is not known.")
        request.session.clear()
        # The cookie is signed, not encrypted: it holds the token's hash only.
        request.session["token_sha256"] = token_sha256(token)
        request.session["csrf"] = secrets.token_urlsafe(24)
        log.info(
            "console: %s signed in", principal.name, extra={"fields": {"principal": principal.name}}
        )
        return RedirectResponse("/", status_code=303)

    async def logout(self, request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -------------------------------------------------------------- pages

    async def state_page(self, request: Request) -> Response:
        snapshot = await self._governance.snapshot()
        view = await self._policy.view()
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

    async def plans_page(self, request: Request) -> Response:
        wanted = request.query_params.get("state", "")
        states = [PlanState(wanted)] if wanted in PlanState.__members__ else []
        page = await self._governance.list_plans(states, 100, "")
        return self._render(
            request,
            "plans.html",
            plans=page.plans,
            states=[s.value for s in PlanState],
            wanted=wanted,
            may_propose=not may_call(request.state.principal, "ProposePlan"),
            freezes=await self._banner(),
        )

    async def plan_page(self, request: Request, error: str = "", status: int = 200) -> Response:
        plan = await self._governance.get_plan(f"plans/{request.path_params['plan_id']}")
        mode = await self._governance.mode()
        cooldown = await self._governance.cooldown_status()
        buttons = plan_buttons(plan, request.state.principal, mode.mode, cooldown)
        validation, unvalidated = await self._validation(plan)
        audited = []
        if not may_call(request.state.principal, "ListAuditRecords"):
            audited = (await self._audit.list(AuditQuery(resource=plan.name), 100, "")).records
        return self._render(
            request,
            "plan.html",
            status,
            page_url=f"/plans/{plan.id}",
            plan=plan,
            buttons=buttons,
            validation=validation,
            unvalidated=unvalidated,
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
            return await self._planner.validate(plan.name, "", None), ""
        except GovexError as refusal:
            return None, refusal.message

    async def freezes_page(self, request: Request, error: str = "", status: int = 200) -> Response:
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

    # ------------------------------------------------------------ actions

    async def _call(self, request: Request, rpc: str) -> Call | None:
        """The Call the interceptor would make (roles checked, the form's
        request_id), or None when that request_id was already done: a
        double click, a resubmitted form."""
        principal: Principal = request.state.principal
        if why := may_call(principal, rpc):
            raise GovexError(Category.PERMISSION_DENIED, "ROLE_REQUIRED", why)
        request_id = request.state.form.get("request_id", "")[:64]
        if request_id and await self._keys.first_response(principal.name, rpc, request_id):
            log.info("console: %s %s already done", rpc, request_id)
            return None
        call = Call(principal, rpc, request_id=request_id, fingerprint=f"console:{rpc}")
        call.respond = lambda result: b""  # the console re-reads; nothing to replay
        return call

    async def plan_step(self, request: Request) -> Response:
        step = request.path_params["step"]
        if step not in RPC_OF:
            return _plain(404, f"no step {step!r}")
        name = f"plans/{request.path_params['plan_id']}"
        form = request.state.form
        etag, text = form.get("etag", ""), form.get("text", "")
        try:
            call = await self._call(request, RPC_OF[step])
            if call is None:
                return RedirectResponse(f"/plans/{request.path_params['plan_id']}", 303)
            actor = request.state.principal
            g = self._governance
            if step == "review":
                await g.review(actor, name, etag, text, call)
            elif step == "approve":
                await g.approve(actor, name, etag, text, call)
            elif step == "reject":
                await g.reject(actor, name, etag, text, call)
            elif step == "activate":
                await g.activate(actor, name, etag, False, "", call)
            else:
                await g.cancel(actor, name, etag, text, call)
        except GovexError as refusal:
            log.info(
                "console: %s %s refused: %s",
                step,
                name,
                refusal.reason,
                extra={"fields": {"resource": name, "outcome": refusal.reason}},
            )
            message = f"{ACTION_OF[step].value.title()} refused: {refusal.message}"
            return await self.plan_page(request, message, 409)
        log.info(
            "console: %s %s", step, name, extra={"fields": {"resource": name, "outcome": "OK"}}
        )
        return RedirectResponse(f"/plans/{request.path_params['plan_id']}", status_code=303)

    async def freeze(self, request: Request) -> Response:
        form = request.state.form
        try:
            call = await self._call(request, "Freeze")
            if call is None:
                return RedirectResponse("/freezes", status_code=303)
            try:
                kind = FreezeType(form.get("type", ""))
                minutes = float(form.get("ttl_minutes", "60"))
            except ValueError:
                raise GovexError(
                    Category.INVALID_ARGUMENT, "BAD_FORM", "choose a type and a TTL in minutes"
                ) from None
            await self._freezes.freeze(
                request.state.principal,
                kind,
                form.get("reason", ""),
                timedelta(minutes=minutes),
                None,
                call,
            )
        except GovexError as refusal:
            return await self.freezes_page(request, f"Freeze refused: {refusal.message}", 409)
        return RedirectResponse("/freezes", status_code=303)

    async def executions_page(self, request: Request) -> Response:
        views, _ = await self._engine.list_executions([], "", 100, "")
        rows = [(v.execution, progress(v.execution, v.orders)) for v in views]
        return self._render(request, "executions.html", rows=rows, freezes=await self._banner())

    async def execution_page(
        self, request: Request, error: str = "", status: int = 200
    ) -> Response:
        view = await self._engine.get(f"executions/{request.path_params['execution_id']}")
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

    async def cancel_execution(self, request: Request) -> Response:
        execution_id = request.path_params["execution_id"]
        try:
            call = await self._call(request, "CancelExecution")
            if call is not None:
                reason = request.state.form.get("reason", "") or "cancelled from the console"
                await self._engine.cancel(
                    request.state.principal, f"executions/{execution_id}", reason, call
                )
        except GovexError as refusal:
            return await self.execution_page(request, f"Cancel refused: {refusal.message}", 409)
        return RedirectResponse(f"/executions/{execution_id}", status_code=303)

    async def audit_page(self, request: Request) -> Response:
        query = AuditQuery(
            resource=request.query_params.get("resource", ""),
            principal=request.query_params.get("principal", ""),
        )
        try:
            page = await self._audit.list(query, 200, "")
        except GovexError as refusal:
            return self._render(request, "denied.html", 400, why=refusal.message)
        verdict = await self._audit.check_tail(quiet=True)
        return self._render(
            request,
            "audit.html",
            page=page,
            verdict=verdict,
            query=query,
            freezes=await self._banner(),
        )

    async def unfreeze(self, request: Request) -> Response:
        name = f"freezes/{request.path_params['freeze_id']}"
        try:
            call = await self._call(request, "Unfreeze")
            if call is None:
                return RedirectResponse("/freezes", status_code=303)
            reason = request.state.form.get("reason", "") or "lifted from the console"
            await self._freezes.unfreeze(request.state.principal, name, False, reason, call)
        except GovexError as refusal:
            return await self.freezes_page(request, f"Unfreeze refused: {refusal.message}", 409)
        return RedirectResponse("/freezes", status_code=303)


# The RPC whose roles a page needs, by the first part of its path.
_READS = {
    "": "GetGovernanceState",
    "plans": "ListPlans",
    "freezes": "ListFreezes",
    "executions": "ListExecutions",
    "audit": "ListAuditRecords",
    "events": "WatchGovernanceEvents",
}


def _csrf(request: Request) -> str:
    return str(request.session.get("csrf", ""))


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (the console sends nothing else)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _plain(status: int, text: str) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain")

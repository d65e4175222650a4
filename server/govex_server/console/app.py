"""The console's HTTP application (Starlette): its routes, the session, and
the guard every page and action passes (signed in, the roles of the RPC a
page reads, the CSRF token of a form). Pages are in pages.py, actions in
actions.py, sign-in in signin.py."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from govex_server import logs
from govex_server.console.actions import Actions
from govex_server.console.context import (
    HERE,
    MAX_FORM_BYTES,
    ConsoleServices,
    FormTooLarge,
    Renderer,
    csrf_of,
    plain,
    read_form,
)
from govex_server.console.live import LiveEvents
from govex_server.console.pages import Pages
from govex_server.console.permissions import may_call
from govex_server.console.signin import SignIn
from govex_server.domain.errors import Category, GovexError
from govex_server.domain.principals import Principal

log = logging.getLogger("govex.console")
Handler = Callable[[Request], Awaitable[Response]]

# The RPC whose roles a page needs, by the first part of its path.
_READS = {
    "": "GetGovernanceState",
    "plans": "ListPlans",
    "freezes": "ListFreezes",
    "executions": "ListExecutions",
    "audit": "ListAuditRecords",
    "events": "WatchGovernanceEvents",
}


class Console:
    """The pages and actions, bound to the services."""

    def __init__(self, services: ConsoleServices) -> None:
        self._services = services
        self._live = LiveEvents(services.streams)
        self._render = Renderer()
        self._pages = Pages(services, self._render)
        self._actions = Actions(services, self._pages)
        self._sign_in = SignIn(services, self._render)

    def app(self, secret: str, https: bool) -> Starlette:
        pages, actions, guard = self._pages, self._actions, self.signed_in
        routes = [
            Route("/login", self._sign_in.page, methods=["GET"]),
            Route("/login", self._sign_in.submit, methods=["POST"]),
            Route("/logout", guard(self._sign_in.logout), methods=["POST"]),
            Route("/", guard(pages.state)),
            Route("/plans", guard(pages.plans)),
            Route("/plans", guard(actions.propose_plan), methods=["POST"]),
            Route("/plans/{plan_id}", guard(pages.plan)),
            Route("/plans/{plan_id}/execute", guard(actions.execute_plan), methods=["POST"]),
            Route("/plans/{plan_id}/{step}", guard(actions.plan_step), methods=["POST"]),
            Route("/freezes", guard(pages.freezes)),
            Route("/freezes", guard(actions.freeze), methods=["POST"]),
            Route("/freezes/{freeze_id}/unfreeze", guard(actions.unfreeze), methods=["POST"]),
            Route("/executions", guard(pages.executions)),
            Route("/executions/{execution_id}", guard(pages.execution)),
            Route(
                "/executions/{execution_id}/cancel",
                guard(actions.cancel_execution),
                methods=["POST"],
            ),
            Route("/audit", guard(pages.audit)),
            Route("/events", guard(self._live.stream)),
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
            exception_handlers={
                GovexError: self._refused,  # type: ignore[dict-item]
                FormTooLarge: _too_large,
            },
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
                return plain(401, "sign in first")
            request.state.principal = principal
            reads = _READS.get(request.url.path.split("/")[1])
            if request.method == "GET" and reads and (why := may_call(principal, reads)):
                return self._render(request, "denied.html", 403, why=why)
            logs.bind(principal=principal.name, rpc=f"console {request.url.path}")
            if request.method == "POST":
                form = await read_form(request)
                request.state.form = form
                if not secrets.compare_digest(form.get("csrf", ""), csrf_of(request)):
                    log.warning("console: POST without a valid CSRF token refused")
                    return plain(403, "the form is stale or forged (CSRF token missing)")
            return await handler(request)

        return guarded

    def _principal(self, request: Request) -> Principal | None:
        digest = request.session.get("token_sha256")
        if not digest:
            return None
        # The principals in force now: a reload that removed one signs it out.
        principal = self._services.auth.by_token_hash(str(digest))
        if principal is None:
            request.session.clear()
        return principal


async def _too_large(request: Request, _: Exception) -> Response:
    log.warning("console: a POST body over %d bytes refused", MAX_FORM_BYTES)
    return plain(413, f"the form is larger than {MAX_FORM_BYTES} bytes")

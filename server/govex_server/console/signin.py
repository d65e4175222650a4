"""Sign-in and sign-out: a bearer token from the principals file becomes a
signed session cookie holding the token's hash (never the token).

The sign-in form has its own CSRF token, kept in the pre-sign-in session:
another site cannot sign a browser in as someone else (login CSRF), and the
session cookie is SameSite=Strict so a cross-site post carries none."""

from __future__ import annotations

import logging
import math
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from govex_server.api.auth import token_sha256
from govex_server.console.context import ConsoleServices, Renderer, plain, read_form
from govex_server.console.throttle import SignInThrottle
from govex_server.domain.errors import GovexError

log = logging.getLogger("govex.console")


class SignIn:
    """GET and POST /login, POST /logout."""

    def __init__(self, services: ConsoleServices, render: Renderer) -> None:
        self._services = services
        self._render = render
        self._throttle = SignInThrottle(services.clock)

    async def page(self, request: Request, error: str = "", status: int = 200) -> Response:
        if not request.session.get("login_csrf"):
            request.session["login_csrf"] = secrets.token_urlsafe(24)
        return self._render(
            request, "login.html", status, error=error, csrf=request.session["login_csrf"]
        )

    async def submit(self, request: Request) -> Response:
        form = await read_form(request)
        address = request.client.host if request.client else "?"
        counted = self._services.metrics.console_sign_ins
        expected = str(request.session.get("login_csrf", ""))
        if not expected or not secrets.compare_digest(form.get("csrf", ""), expected):
            counted.labels("forged").inc()
            log.warning("console: sign-in without its form's CSRF token refused (%s)", address)
            return plain(403, "the sign-in form is stale or forged (CSRF token missing)")
        wait = self._throttle.wait(address)
        if wait.total_seconds() > 0:
            counted.labels("throttled").inc()
            log.warning("console: sign-in from %s refused: too many failures", address)
            seconds = math.ceil(wait.total_seconds())
            return await self.page(
                request, f"Too many failed sign-ins: try again in {seconds} s.", 429
            )
        token = form.get("token", "").strip()
        try:
            principal = self._services.auth.authenticate((("authorization", f"Bearer {token}"),))
        except GovexError:
            self._throttle.failed(address)
            counted.labels("refused").inc()
            log.info("console: sign-in from %s refused (unknown token)", address)
            return await self.page(request, "That token is not known.", 401)
        self._throttle.succeeded(address)
        counted.labels("ok").inc()
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

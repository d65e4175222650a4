"""What every part of the console shares: the services it calls (the same
ones the gRPC API calls), the page renderer and the form helpers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from govex_server.api.auth import Authenticator
from govex_server.api.streams import EventStreams
from govex_server.domain.clock import Clock
from govex_server.domain.principals import Principal
from govex_server.observability.metrics import Metrics
from govex_server.services.audit import AuditLog
from govex_server.services.engine import ExecutionEngine
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import GovernanceService
from govex_server.services.idempotency import IdempotencyKeys
from govex_server.services.planning import ExecutionPlanner
from govex_server.services.policy import PolicyService

HERE = Path(__file__).parent


@dataclass(frozen=True)
class ConsoleServices:
    """The services behind the console's pages and actions."""

    auth: Authenticator
    governance: GovernanceService
    freezes: FreezeService
    policy: PolicyService
    streams: EventStreams
    keys: IdempotencyKeys
    engine: ExecutionEngine
    audit: AuditLog
    planner: ExecutionPlanner
    metrics: Metrics
    clock: Clock


class Renderer:
    """Renders a template for the signed-in principal (its CSRF token and a
    fresh request_id in every form)."""

    def __init__(self) -> None:
        self._templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape()
        )

    def __call__(
        self, request: Request, template: str, status: int = 200, **values: Any
    ) -> Response:
        principal: Principal | None = getattr(request.state, "principal", None)
        values.setdefault("page_url", request.url.path)
        values.setdefault("csrf", csrf_of(request) if principal else "")
        body = self._templates.get_template(template).render(
            principal=principal, request_id=secrets.token_hex(12), **values
        )
        return HTMLResponse(body, status_code=status)


def csrf_of(request: Request) -> str:
    """The signed-in session's CSRF token."""
    return str(request.session.get("csrf", ""))


# The largest form the console reads (its biggest, a plan's targets, is a
# few hundred bytes): a larger body is refused before it is held in memory,
# signed in or not.
MAX_FORM_BYTES = 64 * 1024


class FormTooLarge(Exception):
    """A POST body over MAX_FORM_BYTES (answered 413)."""


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the console sends nothing else), at most
    MAX_FORM_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge
    text = body.decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def plain(status: int, text: str) -> Response:
    return Response(text + "\n", status_code=status, media_type="text/plain")

"""The one helper every mutation calls inside its unit of work: it writes the
audit record, the events and the idempotency record of the change together,
in the change's own transaction, so none of them can exist without the others."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from govex_server.domain.events import DomainEvent
from govex_server.domain.principals import Principal
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import UnitOfWork


@dataclass
class Call:
    """The mutating call being served, made by the server's interceptor.

    ``respond`` turns the service's result into the serialized response that a
    repeat of the same request_id gets back; the servicer sets it before it
    calls the service, so the stored and the sent response are one function's
    output. ``recorded`` lets the interceptor refuse to answer OK for a
    mutation that wrote no audit record (a forgotten Recorder call)."""

    principal: Principal
    rpc: str
    request_id: str = ""
    fingerprint: str = ""
    respond: Callable[[Any], bytes] | None = None
    recorded: bool = field(default=False, compare=False)
    # What the mutation changed (its audit record's resource), for its log line.
    resource: str = field(default="", compare=False)
    # Answered with the first response of its request_id (nothing written).
    replayed: bool = field(default=False, compare=False)


class Recorder:
    """Audit + events + idempotency, in the caller's transaction."""

    def __init__(self, request_id_retention: timedelta = timedelta(hours=72)) -> None:
        self.request_id_retention = request_id_retention

    def record(
        self,
        uow: UnitOfWork,
        call: Call | None,
        audit: AuditRecord,
        events: Iterable[DomainEvent] = (),
        result: Any = None,
    ) -> None:
        """Writes the record of one change. ``call`` is None for changes the
        server makes on its own (expiries, re-derivations, runners)."""
        uow.audit.append(audit)
        for event in events:
            uow.events.append(event)
        if call is None:
            return
        call.recorded = True
        call.resource = call.resource or audit.resource
        if call.request_id and call.respond is not None:
            uow.idempotency.put(
                call.principal.name,
                call.rpc,
                call.request_id,
                call.fingerprint,
                call.respond(result),
                audit.at,
                audit.at - self.request_id_retention,
            )

    def amend(self, uow: UnitOfWork, call: Call | None, result: Any) -> None:
        """Replaces the stored first response of a request whose work went on
        after its first transaction (ProposePlan with auto_advance): a repeat
        then gets what the first caller got."""
        if call is not None and call.request_id and call.respond is not None:
            uow.idempotency.replace(
                call.principal.name, call.rpc, call.request_id, call.respond(result)
            )

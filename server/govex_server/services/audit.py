"""Reading and verifying the audit log's hash chain."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from govex_server.domain import filters
from govex_server.domain.audit_chain import ChainWalk, Verdict
from govex_server.domain.paging import filter_key, next_token, parse_page
from govex_server.store.audit_repositories import AuditQuery, StoredAuditRecord
from govex_server.store.database import Store, UnitOfWork

log = logging.getLogger("govex.audit")

VERIFY_PAGE = 1000
DEFAULT_AUDIT_PAGE = 100
TAIL = 100  # records checked at every start-up


@dataclass(frozen=True)
class AuditPage:
    """One page of ListAuditRecords."""

    records: list[StoredAuditRecord]
    next_page_token: str
    head_sequence: int
    head_hash: str


class AuditLog:
    """The audit log, as ListAuditRecords and verify-audit see it."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self, query: AuditQuery, page_size: int, page_token: str) -> AuditPage:
        """Records in chain order matching ``query``."""
        key = filter_key(
            [
                query.resource,
                query.principal,
                query.since.isoformat() if query.since else "",
                query.until.isoformat() if query.until else "",
                *filters.key(query.conditions),
            ]
        )
        page = parse_page(page_size, page_token, key, str.isdigit, DEFAULT_AUDIT_PAGE)
        after = int(page.after_id) if page.after_id else 0

        def unit(uow: UnitOfWork) -> tuple[list[StoredAuditRecord], tuple[int, str]]:
            return uow.audit.page(after, page.size + 1, query), uow.audit.head()

        rows, (head_sequence, head_hash) = await self._store.read(unit)
        more = len(rows) > page.size
        rows = rows[: page.size]
        last = str(rows[-1].sequence) if rows else None
        return AuditPage(rows, next_token(page, last, more), head_sequence, head_hash)

    async def verify(self, progress: Callable[[int], None] | None = None) -> Verdict:
        """Walks the whole chain from its first record; the first broken link,
        or the count and the head hash."""
        walk = ChainWalk()
        after = 0
        while True:
            rows = await self._store.read(
                lambda uow: uow.audit.page(after, VERIFY_PAGE)  # noqa: B023 - awaited at once
            )
            if not walk.feed(r.chained() for r in rows) or len(rows) < VERIFY_PAGE:
                break
            after = rows[-1].sequence
            if progress is not None:
                progress(walk.count)
        head = await self._store.read(lambda uow: uow.audit.head())
        return walk.finish(*head)

    async def check_tail(self, quiet: bool = False) -> Verdict:
        """Verifies the newest records against each other and the head row
        (a start-up check, and every metrics scrape: cheap, and it catches
        edits of recent history and records removed from the end). Logs an
        error when broken; ``quiet``: no line when intact."""

        def unit(uow: UnitOfWork) -> tuple[list[StoredAuditRecord], tuple[int, str]]:
            return uow.audit.last(TAIL + 1), uow.audit.head()

        rows, head = await self._store.read(unit)
        if not rows:
            walk = ChainWalk()
        else:
            # The oldest record read anchors the walk: it is not itself checked
            # against its predecessor, but everything after it is.
            first = rows[0]
            walk = ChainWalk(first.sequence - 1, first.previous_hash)
        walk.feed(r.chained() for r in rows)
        verdict = walk.finish(*head)
        if verdict.intact:
            if quiet:
                return verdict
            log.info("audit chain tail intact: head %d %s", head[0], head[1][:16])
        else:
            log.error(
                "AUDIT CHAIN BROKEN at record %s: %s (run govex-server verify-audit)",
                verdict.broken_at,
                verdict.problem,
            )
        return verdict

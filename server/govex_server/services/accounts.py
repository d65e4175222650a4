"""ConnectExchange: exchange accounts configured at run time, their
credentials encrypted at rest and never returned nor logged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from govex_server.domain.clock import Clock
from govex_server.domain.errors import failed_precondition, invalid_field
from govex_server.domain.principals import Principal
from govex_server.exchanges.base import ExchangeRegistry, parse_account
from govex_server.exchanges.rate_limit import OrderRateLimiter
from govex_server.services.recorder import Call, Recorder
from govex_server.store import tables as t
from govex_server.store.audit_repositories import AuditRecord
from govex_server.store.database import Store, UnitOfWork

if TYPE_CHECKING:
    from govex_server.exchanges.ccxt_adapter import CcxtExchange


def _ccxt() -> Any:
    """The ccxt adapter module, imported on first use: ccxt costs about 150 MiB
    and 2 s to import, which a server with only the paper exchange never pays."""
    from govex_server.exchanges import ccxt_adapter

    return ccxt_adapter


@dataclass(frozen=True)
class AccountRequest:
    """What ConnectExchange asks for."""

    name: str
    kind: str  # "ccxt" (paper accounts come from the configuration)
    ccxt_id: str
    sandbox: bool
    credentials: dict[str, str]
    quote: str
    max_orders_per_window: int


class AccountService:
    """Adds or reconfigures ccxt accounts in the registry and the store."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        exchanges: ExchangeRegistry,
        limiters: dict[str, OrderRateLimiter],
        credentials_key: str,
        live_trading_enabled: bool,
        default_max_orders: int,
        window: timedelta,
        recorder: Recorder | None = None,
    ) -> None:
        self._recorder = recorder or Recorder()
        self._store = store
        self._clock = clock
        self._exchanges = exchanges
        self._limiters = limiters
        self._fernet = Fernet(credentials_key.encode()) if credentials_key else None
        self._live = live_trading_enabled
        self._default_max = default_max_orders
        self._window = window

    async def connect(
        self, actor: Principal, request: AccountRequest, call: Call | None = None
    ) -> CcxtExchange:
        """Validates, stores (encrypted) and installs the account."""
        account = parse_account(request.name, "name")
        if request.kind != "ccxt":
            raise failed_precondition(
                "PAPER_FROM_CONFIG",
                request.name,
                "paper accounts are configured at start-up (paper_exchange_file)",
            )
        if request.ccxt_id not in _ccxt().KNOWN_IDS:
            raise invalid_field("ccxt_id", f"{request.ccxt_id!r} is not a ccxt exchange id")
        if not request.credentials.get("api_key") or not request.credentials.get("secret"):
            raise invalid_field("credentials", "api_key and secret are required")
        if not request.sandbox and not self._live:
            raise failed_precondition(
                "LIVE_TRADING_DISABLED",
                request.name,
                "live (non-sandbox) accounts need live_trading_enabled in the configuration",
            )
        if self._fernet is None:
            raise failed_precondition(
                "NO_CREDENTIALS_KEY",
                request.name,
                "set credentials_key (a Fernet key) so that credentials are stored encrypted",
            )
        if request.max_orders_per_window < 0:
            raise invalid_field("max_orders_per_window", "must not be negative")
        if account == "paper":
            raise invalid_field("name", "exchanges/paper is the paper account")
        quote = request.quote or "USDT"
        max_orders = request.max_orders_per_window or self._default_max
        exchange: CcxtExchange = _ccxt().CcxtExchange(
            account, request.ccxt_id, request.sandbox, request.credentials, quote
        )
        secret = self._fernet.encrypt(json.dumps(request.credentials).encode())
        now = self._clock.now()
        exchange.update_time = now
        row: dict[str, Any] = {
            "id": account,
            "kind": "ccxt",
            "ccxt_id": request.ccxt_id,
            "sandbox": request.sandbox,
            "quote": quote,
            "max_orders_per_window": max_orders,
            "credentials": secret,
            "updated_at": now,
        }
        insert = postgresql.insert if self._store.dialect == "postgresql" else sqlite.insert

        def unit(uow: UnitOfWork) -> None:
            statement = insert(t.exchange_accounts).values(**row)
            update = {k: v for k, v in row.items() if k != "id"}
            uow.conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=update))
            audit = AuditRecord.by(
                actor,
                at=now,
                rpc="ConnectExchange",
                resource=f"exchanges/{account}",
                reason=f"{request.ccxt_id} sandbox={request.sandbox}",
                details={"ccxt_id": request.ccxt_id, "sandbox": request.sandbox},
            )
            self._recorder.record(uow, call, audit, (), exchange)

        # The limiter is in place while the unit runs: the response stored for
        # a repeat of this request shows the same rate budget as the first.
        previous = self._limiters.get(account)
        self._limiters[account] = OrderRateLimiter(self._clock, max_orders, self._window)
        try:
            await self._store.write(unit)
        except BaseException:
            if previous is None:
                del self._limiters[account]
            else:
                self._limiters[account] = previous
            raise
        self._exchanges.put(exchange)
        return exchange

    async def load(self) -> None:
        """Installs the stored accounts at start-up."""
        rows = await self._store.read(
            lambda uow: uow.conn.execute(select(t.exchange_accounts)).mappings().all()
        )
        for row in rows:
            if self._fernet is None:
                raise failed_precondition(
                    "NO_CREDENTIALS_KEY", row["id"], "stored accounts need credentials_key"
                )
            try:
                credentials = json.loads(self._fernet.decrypt(bytes(row["credentials"])))
            except InvalidToken:
                raise failed_precondition(
                    "BAD_CREDENTIALS_KEY", row["id"], "credentials_key cannot decrypt it"
                ) from None
            loaded = _ccxt().CcxtExchange(
                row["id"], row["ccxt_id"], row["sandbox"], credentials, row["quote"]
            )
            loaded.update_time = row["updated_at"]
            self._exchanges.put(loaded)
            self._limiters[row["id"]] = OrderRateLimiter(
                self._clock, row["max_orders_per_window"], self._window
            )

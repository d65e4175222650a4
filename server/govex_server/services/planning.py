"""ValidatePlan: the whole pipeline as a dry verdict, sending nothing.

Legs from the plan's targets and the account's holdings and prices, their
operation classes and the freezes' verdicts, the policy's effects (no-trade
zone, minimum trade, daily cap, ramp, slippage), each order's safety verdict
and score, and the schedule over days."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from govex_server.domain import money
from govex_server.domain.clock import Clock
from govex_server.domain.execution.blockers import Blocker
from govex_server.domain.execution.legs import (
    Leg,
    LegPlan,
    Side,
    compute_legs,
    mode_refusal,
    unreached,
)
from govex_server.domain.execution.orders import client_order_id
from govex_server.domain.execution.pricing import limit_order, step_refusal
from govex_server.domain.execution.safety import (
    Level,
    Limits,
    Market,
    ProposedOrder,
    validate,
)
from govex_server.domain.execution.safety import Verdict as SafetyVerdict
from govex_server.domain.execution.schedule import (
    MAX_EXECUTION_DAYS,
    Slice,
    days_needed,
    schedule,
)
from govex_server.domain.freezes import Operation, verdict
from govex_server.domain.freezes import Verdict as FreezeVerdict
from govex_server.domain.ids import UlidFactory
from govex_server.domain.plans import PlanState
from govex_server.domain.policy import Policy
from govex_server.exchanges.base import Balance, ExchangeRegistry
from govex_server.exchanges.errors import ExchangeError, unreachable
from govex_server.services.freezes import FreezeService
from govex_server.services.governance import GovernanceService
from govex_server.services.policy import PolicyService
from govex_server.store.database import Store


@dataclass(frozen=True)
class PlannedOrder:
    """One order the execution would send, with its safety verdict."""

    leg_index: int
    slice_index: int
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    safety: SafetyVerdict

    @property
    def notional(self) -> Decimal:
        """Quantity times price, exactly."""
        return money.mul(self.quantity, self.price)


@dataclass(frozen=True)
class PlanValidation:
    """The dry verdict on a plan."""

    executable: bool
    # Every blocking reason with its kind (ExecutePlan's reason code).
    blockers: list[tuple[Blocker, str]]
    legs: LegPlan
    freeze_verdicts: list[FreezeVerdict]
    policy: Policy
    orders: list[PlannedOrder]
    schedule: list[Slice]
    days: int

    @property
    def blocking_reasons(self) -> list[str]:
        """The blocking reasons' texts, in order."""
        return [text for _, text in self.blockers]


class ExecutionPlanner:
    """Runs the pipeline without sending anything or changing any state."""

    def __init__(
        self,
        store: Store,
        governance: GovernanceService,
        policy: PolicyService,
        freezes: FreezeService,
        exchanges: ExchangeRegistry,
        limits: Limits,
        default_level: Level,
        clock: Clock,
        max_days: int = MAX_EXECUTION_DAYS,
    ) -> None:
        self._max_days = max_days
        self._store = store
        self._governance = governance
        self._policy = policy
        self._freezes = freezes
        self._exchanges = exchanges
        self._limits = limits
        self.default_level = default_level
        self._clock = clock
        self._ids = UlidFactory()

    @property
    def max_days(self) -> int:
        """The longest schedule an execution may have (max_execution_days)."""
        return self._max_days

    async def policy_now(self) -> Policy:
        """The policy in force now (a running execution's sends obey it too)."""
        return (await self._policy.view()).policy

    async def validate(
        self, plan_name: str, exchange_name: str, level: Level | None
    ) -> PlanValidation:
        """The verdict for ``plan_name`` on the account ``exchange_name``."""
        plan = await self._governance.get_plan(plan_name)
        exchange = self._exchanges.get(exchange_name)
        view = await self._policy.view()
        policy = view.policy
        active_freezes = await self._freezes.active()
        now = self._clock.now()
        try:
            balances = await exchange.balances()
            assets = {t.asset for t in plan.targets} | set(balances)
            prices = await exchange.prices(assets)
            markets = await exchange.markets()
        except ExchangeError as exc:
            raise unreachable(exchange.account, exc) from exc
        # What the account already traded today, and what its orders at the
        # exchange may still trade, leave less of today's cap: the schedule
        # shown is the one the engine will follow.
        used_today = await self._store.read(
            lambda uow: uow.daily_notional.counted(exchange.account, now.date())
        )
        legs = compute_legs(
            plan.targets,
            {a: b.total for a, b in balances.items()},
            prices,
            exchange.quote,
            policy.no_trade_threshold * 100,
            policy.min_trade_usd,
        )
        reasons: list[tuple[Blocker, str]] = []
        if plan.state is not PlanState.ACTIVE:
            reasons.append(
                (
                    Blocker.PLAN_STATE,
                    f"{plan.name} is {plan.state.value}; only the ACTIVE plan is executed",
                )
            )
        if refusal := mode_refusal(policy.mode, legs):
            reasons.append((Blocker.POLICY_FREEZE, refusal))
        reasons += [
            (Blocker.TARGET_UNREACHABLE, text)
            for text in unreached(legs, markets, exchange.quote, f"exchanges/{exchange.account}")
        ]
        for leg in legs.active_legs:
            if (market := markets.get(leg.symbol)) is not None and (
                why := step_refusal(leg.price, policy.slippage_limit_bps, market)
            ):
                reasons.append(
                    (Blocker.PRICE_STEP, f"leg {leg.index} ({leg.side.value} {leg.symbol}): {why}")
                )
        operations = sorted({op for leg in legs.active_legs for op in leg.requires}, key=_op_key)
        freeze_verdicts = [verdict(op, active_freezes, now) for op in operations]
        for leg in legs.active_legs:
            blocked = [v for v in freeze_verdicts if v.operation in leg.requires and not v.allowed]
            for v in blocked:
                reasons.append(
                    (
                        Blocker.FROZEN,
                        f"leg {leg.index} ({leg.side.value} {leg.symbol}): {v.explanation}",
                    )
                )
        slices = (
            schedule(
                legs.active_legs,
                legs.portfolio_value,
                policy.cap_daily,
                policy.ramp_hours,
                policy.min_trade_usd,
                now,
                used_today,
                max_days=self._max_days,
            )
            if legs.active_legs
            else []
        )
        orders = self._orders(
            legs, slices, markets, balances, exchange.quote, policy, exchange.sandbox, level
        )
        for order in orders:
            if not order.safety.passed:
                rules = ", ".join(sorted({i.rule for i in order.safety.issues}))
                reasons.append(
                    (
                        Blocker.SAFETY_REJECTED,
                        f"order leg {order.leg_index} slice {order.slice_index}: safety refused "
                        f"({rules}; score {order.safety.score})",
                    )
                )
        return PlanValidation(
            not reasons,
            reasons,
            legs,
            freeze_verdicts,
            policy,
            orders,
            slices,
            days_needed(slices),
        )

    def _orders(
        self,
        legs: LegPlan,
        slices: list[Slice],
        markets: dict[str, Market],
        balances: dict[str, Balance],
        quote: str,
        policy: Policy,
        sandbox: bool,
        level: Level | None,
    ) -> list[PlannedOrder]:
        by_index: dict[int, Leg] = {leg.index: leg for leg in legs.legs}
        free = {a: b.free for a, b in balances.items()}
        daily_used: dict[int, Decimal] = {}
        known: set[str] = set()
        execution_id = self._ids.new(self._clock.now())  # a stand-in: nothing is stored
        out = []
        for s in slices:
            leg = by_index[s.leg_index]
            market = markets.get(leg.symbol, Market(money.ZERO, money.ZERO, money.ZERO))
            quantity, price = limit_order(
                leg.side, s.notional, leg.price, policy.slippage_limit_bps, market
            )
            cid = client_order_id(execution_id, leg.index, s.slice_index, 0)
            proposal = ProposedOrder(
                cid, leg.symbol, leg.side.value, quantity, price, leg.price, sandbox
            )
            result = validate(
                proposal,
                self._limits,
                market,
                daily_used.get(s.day, money.ZERO),
                free.get(quote, money.ZERO),
                free.get(leg.asset, money.ZERO),
                known,
                level or self.default_level,
            )
            known.add(cid)
            if result.passed:
                # Later orders see the balances this one would leave behind.
                daily_used[s.day] = daily_used.get(s.day, money.ZERO) + proposal.notional
                sign = 1 if leg.side is Side.BUY else -1
                free[leg.asset] = free.get(leg.asset, money.ZERO) + sign * quantity
                free[quote] = free.get(quote, money.ZERO) - sign * proposal.notional
            out.append(
                PlannedOrder(
                    leg.index, s.slice_index, leg.symbol, leg.side, quantity, price, result
                )
            )
        return out


def _op_key(op: Operation) -> str:
    return op.value

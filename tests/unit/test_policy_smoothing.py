"""Step 8: the cap is smoothed once per published signal set. Freezes that
start and end, and time that passes, re-derive from the stored smoothed cap
and never smooth again: in the pure derivation, and through the services on a
real store (where the freeze and the policy it clamps commit together)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govex_server.api.event_codec import encode_event
from govex_server.domain.clock import ManualClock
from govex_server.domain.freezes import Freeze, FreezeType
from govex_server.domain.phase import PhaseSettings
from govex_server.domain.policy import PolicyState, derive
from govex_server.domain.policy_settings import PolicySettings
from govex_server.domain.principals import Principal, PrincipalKind, Role
from govex_server.domain.signals import SignalSet
from govex_server.services.freezes import FreezeService
from govex_server.services.policy import PolicyService
from govex_server.store.database import Store
from govex_server.store.migrate import migrate

S = PolicySettings()
OPERATOR = Principal("olga", PrincipalKind.HUMAN, frozenset(Role))
AI = Principal("signals-bot", PrincipalKind.AI, frozenset(Role))

# A freeze of a type, an end of the n-th freeze started (if still active),
# or minutes of clock time.
Op = tuple[str, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("freeze"), st.integers(0, len(FreezeType) - 1)),
        st.tuples(st.just("end"), st.integers(0, 5)),
        st.tuples(st.just("wait"), st.integers(1, 200)),
    ),
    max_size=12,
)


def test_five_freeze_cycles_leave_the_cap_where_it_was() -> None:
    # POLICY.md's example: one signal set, then freezes that come and go.
    clock = ManualClock()
    published = SignalSet(as_of=clock.now(), contradiction_index=0.1, confidence=0.9)
    first = derive(published, PolicyState(), [], clock.now(), S, new_set=True)
    state = first.state
    assert state.smoothed_cap is not None
    for i, kind in enumerate([FreezeType.S3_ALERT_FREEZE, FreezeType.FULL_FREEZE] * 5):
        clock.advance(timedelta(minutes=1))
        f = Freeze(f"01J{i:023d}", kind, "t", "op", clock.now(), clock.now() + timedelta(hours=1))
        during = derive(published, state, [f], clock.now(), S)
        assert during.policy.cap_daily < first.policy.cap_daily
        after = derive(published, during.state, [], clock.now(), S)
        assert after.state.smoothed_cap == first.state.smoothed_cap
        assert after.policy.cap_daily == first.policy.cap_daily
        assert "step 8: cap 8.80% as smoothed when the signals were published" in (
            after.policy.explanation
        )
        state = after.state


@settings(max_examples=200)
@given(ops, st.floats(0.0, 0.9), st.floats(0.1, 1.0))
def test_no_new_set_no_smoothing(sequence: list[Op], c: float, f: float) -> None:
    clock = ManualClock()
    published = SignalSet(as_of=clock.now(), contradiction_index=c, confidence=f)
    state = derive(published, PolicyState(), [], clock.now(), S, new_set=True).state
    smoothed = state.smoothed_cap
    freezes: list[Freeze] = []
    for op, n in sequence:
        now = clock.now()
        if op == "freeze":
            kind = list(FreezeType)[n]
            fid = f"01J{len(freezes):023d}"
            freezes.append(Freeze(fid, kind, "t", "op", now, now + timedelta(days=30)))
        elif op == "end" and n < len(freezes):
            freezes[n] = Freeze(freezes[n].id, freezes[n].type, "t", "op", now, now)
        else:
            clock.advance(timedelta(minutes=n))
        state = derive(published, state, freezes, clock.now(), S).state
        assert state.smoothed_cap == smoothed


async def _through_services(sequence: list[Op], directory: Path) -> None:
    clock = ManualClock()
    store = Store(f"sqlite:///{directory}/govex.db", encode_event)
    await migrate(store)
    try:
        policy = PolicyService(store, clock, S, PhaseSettings())
        freezes = FreezeService(store, clock, policy.rederive_in)
        await policy.publish(
            AI, SignalSet(as_of=clock.now(), contradiction_index=0.1, confidence=0.9)
        )

        async def stored_cap() -> float | None:
            return await store.read(lambda uow: uow.policy.get()[1].smoothed_cap)

        smoothed = await stored_cap()
        started: list[str] = []
        for op, n in sequence:
            if op == "freeze":
                kind = list(FreezeType)[n]
                made = await freezes.freeze(OPERATOR, kind, "drill", timedelta(days=1), None)
                started.append(made.name)
                # The same transaction clamped the policy.
                view = await policy.view()
                assert made.id in await store.read(lambda uow: uow.policy.get()[1].freeze_ids)
                assert view.policy.cap_daily <= getattr(S, _CAP[kind])
            elif op == "end" and n < len(started):
                if (await freezes.get(started[n])).active_at(clock.now()):
                    await freezes.unfreeze(OPERATOR, started[n], False, "drill over")
            else:
                clock.advance(timedelta(minutes=n))
                await freezes.expire_due()
                await policy.rederive()
            assert await stored_cap() == smoothed
    finally:
        await store.close()


_CAP = {
    FreezeType.FULL_FREEZE: "full_freeze_cap",
    FreezeType.S3_ALERT_FREEZE: "s3_freeze_cap",
    FreezeType.ERROR_FREEZE: "error_freeze_cap",
}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_no_new_set_no_smoothing_through_the_services(sequence: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(_through_services(sequence, Path(directory)))

"""The interceptor refuses to answer OK for a mutation that wrote no audit
record: a servicer that forgets its Recorder call fails loudly, not silently."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from govex.governance.v1 import governance_service_pb2 as gov
from govex_server.api.auth import Authenticator
from govex_server.api.interceptor import GovexInterceptor
from govex_server.api.stream_limits import StreamLimits
from govex_server.domain.clock import ManualClock
from govex_server.domain.principals import Principal, PrincipalKind, Role
from govex_server.services.idempotency import IdempotencyKeys
from govex_server.services.recorder import Call
from govex_server.store.database import Store

CAROL = Principal("carol", PrincipalKind.HUMAN, frozenset({Role.OPERATOR}))


def _interceptor(tmp: str) -> GovexInterceptor:
    store = Store(f"sqlite:///{tmp}/unused.db")
    keys = IdempotencyKeys(store, ManualClock(), timedelta(hours=72))
    return GovexInterceptor(Authenticator({}), keys, StreamLimits(1, 1))


async def test_a_mutation_without_its_audit_record_is_not_answered_ok(tmp_path: Any) -> None:
    interceptor = _interceptor(str(tmp_path))
    call = Call(CAROL, "Freeze")

    async def forgetful(request: Any, context: Any) -> gov.FreezeResponse:
        return gov.FreezeResponse()

    async def recording(request: Any, context: Any) -> gov.FreezeResponse:
        call.recorded = True
        return gov.FreezeResponse()

    with pytest.raises(RuntimeError, match="without writing its audit record"):
        await interceptor._mutate(call, gov.FreezeRequest(), None, forgetful, gov.FreezeResponse)  # type: ignore[arg-type]
    answer = await interceptor._mutate(
        call,
        gov.FreezeRequest(),
        None,  # type: ignore[arg-type]
        recording,
        gov.FreezeResponse,
    )
    assert isinstance(answer, gov.FreezeResponse)

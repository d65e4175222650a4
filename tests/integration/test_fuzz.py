"""A bounded fuzz run over every RPC (random and corrupt bodies, random
identities, a fixed seed): never INTERNAL or UNKNOWN, never a traceback in
the log, and the server still answers afterwards."""

from __future__ import annotations

import logging

import pytest

from govex.governance.v1 import governance_service_pb2 as gov
from tests.conftest import Harness
from tests.fuzz.bodies import methods
from tests.fuzz.driver import fuzz
from tests.support import md


async def test_2000_fuzzed_calls(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h = harness
    with caplog.at_level(logging.DEBUG):
        result = await fuzz(h.target, 2000, seed=9, concurrency=8)
    histogram, bad = result.histogram, result.bad
    assert sum(histogram.values()) == 2000
    assert "INTERNAL" not in histogram and "UNKNOWN" not in histogram, bad
    # The run reached the handlers, not only the front door.
    assert histogram["OK"] + histogram["OK (stream)"] > 50, histogram
    assert histogram["INVALID_ARGUMENT"] > 200, histogram
    assert histogram["UNAUTHENTICATED"] > 100, histogram
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage() for r in tracebacks[:3]]
    # Every RPC was called.
    assert set(result.per_method) == {m.full_name for m in methods()}
    state = await h.gov.GetGovernanceState(gov.GetGovernanceStateRequest(), metadata=md("victor"))
    assert state.state.mode_etag

"""Log lines carry the call's fields (bound once per call) and their own,
as JSON members or as key=value text; empty fields are left out."""

from __future__ import annotations

import asyncio
import json
import logging

from govex_server import logs


def _record(message: str, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("govex.test", logging.INFO, __file__, 1, message, (), None)
    if fields:
        record.fields = fields
    return record


def test_json_lines_carry_the_bound_call_and_their_own_fields() -> None:
    async def in_a_call() -> str:
        logs.bind(rpc="Freeze", principal="carol", request_id="")
        return logs.JsonFormatter().format(_record("done", resource="freezes/1", outcome="OK"))

    entry = json.loads(asyncio.run(in_a_call()))
    assert entry["message"] == "done" and entry["level"] == "INFO"
    assert entry["rpc"] == "Freeze" and entry["principal"] == "carol"
    assert entry["resource"] == "freezes/1" and entry["outcome"] == "OK"
    assert "request_id" not in entry  # empty: left out
    # Outside the call (another task's context) nothing is bound.
    outside = json.loads(logs.JsonFormatter().format(_record("idle")))
    assert "rpc" not in outside and "principal" not in outside


def test_text_lines_put_the_fields_after_the_message_quoted_when_needed() -> None:
    with logs.bound(rpc="ProposePlan"):
        line = logs.TextFormatter().format(_record("refused", reason="has space", code="X"))
    assert line.endswith('refused rpc=ProposePlan reason="has space" code=X'), line
    assert "rpc=" not in logs.TextFormatter().format(_record("after the block"))

"""Log lines carry the call's fields (bound once per call) and their own,
as JSON members or as key=value text; empty fields are left out."""

from __future__ import annotations

import asyncio
import io
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


class _CountingStream(io.StringIO):
    """A stream that counts the writes it is given."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_the_line_writer_keeps_every_line_in_order_and_writes_them_in_batches() -> None:
    stream = _CountingStream()
    handler = logs.LineWriter(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("govex.test.line_writer")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for i in range(5000):
            logger.info("line %d", i)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")  # a traceback: one record, several lines
    finally:
        logger.removeHandler(handler)
        handler.close()  # drains what is queued
    written = stream.getvalue().splitlines()
    assert written[:5000] == [f"line {i}" for i in range(5000)]
    assert written[5000] == "failed"
    assert written[-1] == "ValueError: boom"
    # Lines queued while the writer was busy went out together.
    assert stream.writes < 5000
    assert not handler._thread.is_alive()  # closed: the thread has ended


def test_a_flush_returns_once_every_line_before_it_is_written() -> None:
    stream = _CountingStream()
    handler = logs.LineWriter(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    try:
        for i in range(2000):
            handler.handle(_record(f"queued {i}"))
        handler.flush()
        # Read before close: the flush alone got them out.
        assert stream.getvalue().splitlines() == [f"queued {i}" for i in range(2000)]
    finally:
        handler.close()


def test_configured_logging_looks_up_no_caller_thread_or_process() -> None:
    """No line shows them, so no record pays for finding them."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    saved = (
        logging._srcfile,
        logging.logThreads,
        logging.logProcesses,
        logging.logMultiprocessing,
    )
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("INFO", "json")
        keep = Keep()
        root.addHandler(keep)
        logging.getLogger("govex.test").info("looked up?")
        [record] = seen
        assert (record.funcName, record.lineno) == ("(unknown function)", 0)
        assert record.thread is None and record.process is None
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        (
            logging._srcfile,
            logging.logThreads,
            logging.logProcesses,
            logging.logMultiprocessing,
        ) = saved
        logging.captureWarnings(False)  # configure routed warnings to the log

"""Structured logs: one JSON object per line on stderr (or key=value text).

Every line carries the fields of the call it was written in (rpc,
principal, request_id: bound once by the server's interceptor through a
context variable, so no handler passes them along) and the fields given as
``extra={"fields": {...}}`` (resource, outcome, order, account...)."""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("json", "text")
_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar(
    "govex_log_context", default=MappingProxyType({})
)


def bind(**fields: str) -> None:
    """Adds ``fields`` to every line written from now on in this task (and
    in the tasks it starts); empty values are left out."""
    _CONTEXT.set(_with(fields))


def _with(fields: Mapping[str, str]) -> Mapping[str, str]:
    """The bound fields and ``fields`` (empty values left out)."""
    given = {k: v for k, v in fields.items() if v}
    current = _CONTEXT.get()
    # A call's task starts with nothing bound: no merge to make then.
    return {**current, **given} if current else given


@contextmanager
def bound(**fields: str) -> Iterator[None]:
    """``bind`` for the duration of a ``with`` block."""
    token = _CONTEXT.set(_with(fields))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The call's context and the record's own fields."""
    own: Mapping[str, Any] = getattr(record, "fields", None) or {}
    return {k: v for k, v in {**_CONTEXT.get(), **own}.items() if v not in ("", None)}


# json.dumps(entry, default=str), without building an encoder for every line.
_JSON = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _JSON.encode(entry)


class TextFormatter(logging.Formatter):
    """Time, level, logger, message, then the fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={_quoted(v)}" for k, v in fields_of(record).items())
        if not extra:
            return line
        head, newline, tail = line.partition("\n")  # a traceback stays below
        return f"{head} {extra}{newline}{tail}"


def _quoted(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


def quiet_grpc_core() -> None:
    """gRPC core writes its own plain-text lines to stderr, which would break
    a JSON log; unless the operator asked for them (GRPC_VERBOSITY), they
    are off. Must run before grpc is imported (the core reads it once)."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")


class LineWriter(logging.Handler):
    """Formats each record in the thread that logs it, and leaves the
    writing to a thread of its own, which writes every line queued since
    its last write in one write.

    A write to stderr releases the GIL, and the event loop's thread then
    waits for it behind the store's writer and gRPC's poller: one write per
    request cost ProposePlan about a sixth of its throughput. Lines keep
    their order; at exit (logging's shutdown closes every handler) the
    queue is drained. What a kill -9 can lose is what the writer thread had
    not written yet: the last moment's lines, never a stored fact."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        # Lines; a flush's marker; None: the end.
        self._lines: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="govex-log", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(self.format(record))
        except Exception:
            self.handleError(record)

    def _write(self) -> None:
        while True:
            item = self._lines.get()
            batch: list[str] = []
            flushed: list[threading.Event] = []
            while item is not None:
                if isinstance(item, threading.Event):
                    flushed.append(item)
                else:
                    batch.append(item)
                if len(batch) >= _MAX_LINES_PER_WRITE:
                    break
                try:
                    item = self._lines.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self._stream.write("\n".join(batch) + "\n")
                    self._stream.flush()
                except (OSError, ValueError):
                    pass  # stderr closed or gone: nowhere left to say it
            for waiter in flushed:
                waiter.set()
            if item is None:
                return

    def flush(self) -> None:
        """Returns once every line queued before the call is written (what
        the process prints itself then comes after them)."""
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            written = threading.Event()
            self._lines.put(written)
            written.wait(timeout=5)

    def close(self) -> None:
        """Writes what is queued, then ends the thread."""
        if self._thread.is_alive():
            self._lines.put(None)
            self._thread.join(timeout=5)
        super().close()


def flush() -> None:
    """Every log line queued so far is written (before a direct print)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


# One write carries at most this many lines (a burst is written in pieces).
_MAX_LINES_PER_WRITE = 1000


def configure(level: str, fmt: str) -> None:
    """Sets up the root logger once."""
    handler = LineWriter(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, LineWriter):
            old.close()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # No line names its caller's file, thread or process: logging need not
    # look them up for every record (a stack walk and three lookups, a fifth
    # of a mutation's line; Python's logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Python's own grpc module logs through `logging`: it is formatted above.
    logging.captureWarnings(True)
    # Alembic announces each of its plugins at INFO: noise at every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

"""Hot statements, compiled once and run on the driver's cursor.

Inside the SQLite writer every change runs some eight statements, and
SQLAlchemy's per-execution machinery (execution context, parameter
construction, result wrapping, event dispatch) cost about 60 us each: more
than SQLite spent executing them, and most of the writer thread's time. A
``Prepared`` statement is a Core statement compiled once per dialect; on
SQLite it runs on the sqlite3 cursor directly, with the bind and result
processors SQLAlchemy itself would have used (so a value written here reads
back exactly as one written through ``Connection.execute``), and a driver
error becomes the same ``sqlalchemy.exc`` error (an IntegrityError is still
a CONFLICT). On PostgreSQL (asyncpg behind ``run_sync``) it is plain
``Connection.execute``: there the round trip to the server dominates.

Only the statements of the write hot paths use this; everything else stays
ordinary SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement, Executable

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Per positional parameter: its bind name, a literal value (binds the
    # statement carries itself, e.g. ``id = 1``) and its bind processor.
    names: tuple[str, ...]
    literals: tuple[Any, ...]
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    # The result columns' names, for rows read as mappings.
    columns: tuple[str, ...]
    # Per result column: its processor makes immutable values (our direct
    # codecs: times and amounts), so equal stored texts may share one.
    shared: tuple[bool, ...]


_MISSING = object()
# Every Prepared statement made, so that a store can compile them up front.
_EVERY: list[Prepared] = []


def compile_all(dialect: Dialect) -> int:
    """Compiles every Prepared statement made so far for ``dialect`` (at
    start-up: otherwise the first execution's first orders paid for it, some
    30 ms); how many there are."""
    for statement in list(_EVERY):
        statement._compiled(dialect)
    return len(_EVERY)


class Prepared:
    """One statement; ``keys`` are the columns an INSERT or UPDATE sets."""

    def __init__(self, statement: ClauseElement, keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        if not isinstance(statement, Executable):
            raise TypeError(f"not an executable statement: {statement!r}")
        self._executable: Executable = statement
        self._keys = list(keys) if keys is not None else None
        # Keyed by the dialect's name: every SQLite engine of the process
        # (the writer's, the readers') compiles a statement to the same SQL
        # with the same processors, so it is compiled once per process.
        self._by_dialect: dict[str, _Compiled] = {}
        _EVERY.append(self)

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is not None:
            return found
        compiled: Any = self.statement.compile(dialect=dialect, column_keys=self._keys)
        names = tuple(compiled.positiontup or ())
        processors = compiled._bind_processors
        literals = tuple(
            _MISSING if compiled.binds[n].required else compiled.binds[n].effective_value
            for n in names
        )
        sqlite = dialect.name == "sqlite"
        # On SQLite our own column types bind and read with their direct
        # codecs (tables.py: the same values, without SQLAlchemy's layers).
        binds = tuple(
            _direct(compiled.binds[n].type, "sqlite_bind") if sqlite else None for n in names
        )
        direct = tuple(
            _direct(column[2][0].type, "sqlite_result") if sqlite and column[2] else None
            for column in compiled._result_columns
        )
        results = tuple(
            found or column[2][0].type._cached_result_processor(dialect, None)
            if column[2]
            else None
            for found, column in zip(direct, compiled._result_columns, strict=True)
        )
        made = _Compiled(
            compiled.string,
            names,
            literals,
            tuple(b or processors.get(n) for b, n in zip(binds, names, strict=True)),
            results,
            tuple(column[0] for column in compiled._result_columns),
            tuple(found is not None for found in direct),
        )
        self._by_dialect[dialect.name] = made
        return made

    def _args(self, compiled: _Compiled, params: Mapping[str, Any]) -> list[Any]:
        args = []
        for name, literal, process in zip(
            compiled.names, compiled.literals, compiled.binds, strict=True
        ):
            value = params[name] if literal is _MISSING or name in params else literal
            # None goes through the processor too, as in SQLAlchemy: JSON
            # turns it into the JSON text 'null', not SQL NULL.
            args.append(process(value) if process is not None else value)
        return args

    def _run(self, conn: Connection, params: Mapping[str, Any]) -> tuple[Any, _Compiled]:
        dialect = conn.dialect
        compiled = self._compiled(dialect)
        args = self._args(compiled, params)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, args)
        except dialect.loaded_dbapi.Error as error:
            raise _translated(compiled.sql, args, error, dialect) from error
        return cursor, compiled

    def execute(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        """Runs the statement; the number of rows it changed."""
        if conn.dialect.name != "sqlite":
            return int(conn.execute(self._executable, dict(params or {})).rowcount)
        cursor, _ = self._run(conn, params or {})
        return int(cursor.rowcount)

    def first(
        self, conn: Connection, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, ...] | None:
        """The first row (processed like SQLAlchemy's), or None."""
        if conn.dialect.name != "sqlite":
            row = conn.execute(self._executable, dict(params or {})).first()
            return tuple(row) if row is not None else None
        cursor, compiled = self._run(conn, params or {})
        raw = cursor.fetchone()
        cursor.close()
        if raw is None:
            return None
        return tuple(
            process(value) if process is not None else value
            for process, value in zip(compiled.results, raw, strict=True)
        )

    def rows(
        self, conn: Connection, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Every row (processed like SQLAlchemy's)."""
        if conn.dialect.name != "sqlite":
            return [tuple(r) for r in conn.execute(self._executable, dict(params or {}))]
        cursor, compiled = self._run(conn, params or {})
        raw = cursor.fetchall()
        cursor.close()
        processed: list[tuple[int, Callable[[Any], Any], dict[Any, Any] | None]] = [
            (i, p, {} if shared else None)
            for i, (p, shared) in enumerate(zip(compiled.results, compiled.shared, strict=True))
            if p is not None
        ]
        if not processed:
            return raw  # type: ignore[no-any-return]
        # Only the columns that have a processor are touched (a thousand
        # order rows are read at every turn of a runner), and a time or an
        # amount is decoded once per distinct text of the read: an
        # execution's orders share their times and sizes (a read of 1,000
        # orders spent a third of its time parsing them again and again).
        rows: list[tuple[Any, ...]] = []
        for row in raw:
            values = list(row)
            for i, process, decoded in processed:
                if decoded is None:
                    values[i] = process(values[i])
                    continue
                text = values[i]
                value = decoded.get(text, _MISSING)
                if value is _MISSING:
                    value = decoded[text] = process(text)
                values[i] = value
            rows.append(tuple(values))
        return rows

    def first_mapping(
        self, conn: Connection, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The first row as a dict keyed by column name, or None."""
        if conn.dialect.name != "sqlite":
            row = conn.execute(self._executable, dict(params or {})).mappings().first()
            return dict(row) if row is not None else None
        values = self.first(conn, params)
        if values is None:
            return None
        return dict(zip(self._compiled(conn.dialect).columns, values, strict=True))

    def execute_many(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Runs the statement once per row (one driver call on SQLite)."""
        if conn.dialect.name != "sqlite":
            conn.execute(self._executable, [dict(r) for r in rows])
            return
        dialect = conn.dialect
        compiled = self._compiled(dialect)
        args = [self._args(compiled, row) for row in rows]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(compiled.sql, args)
        except dialect.loaded_dbapi.Error as error:
            raise _translated(compiled.sql, args, error, dialect) from error


def _direct(column_type: Any, codec: str) -> Processor:
    """A column type's direct SQLite codec (tables.py), or None."""
    found: Processor = getattr(type(column_type), codec, None)
    return found


def _translated(sql: str, args: Any, error: Exception, dialect: Dialect) -> Exception:
    """The ``sqlalchemy.exc`` error ``Connection.execute`` would have raised."""
    return sa_exc.DBAPIError.instance(sql, args, error, dialect.loaded_dbapi.Error, dialect=dialect)

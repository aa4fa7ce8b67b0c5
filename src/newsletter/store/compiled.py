"""Statements compiled once for a dialect and run on the driver with its own parameters.

SQLAlchemy's per-execution work (cache key, parameter processing, result wrapping) costs
more than the SQL of many small statements or rows, so the sender's hot statements and
the bulk import run their SQL through ``CompiledStatement`` with the same type conversions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any


class CompiledStatement:
    """A statement compiled once for a dialect: ``sql`` and ``params(values)`` for the
    DB-API cursor, with the bind conversions SQLAlchemy would apply.

    ``column_keys`` names the columns an INSERT without ``.values()`` sets.
    """

    def __init__(
        self, statement: Any, dialect: Any, *, column_keys: list[str] | None = None
    ) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql: str = compiled.string
        self._defaults = dict(compiled.params)
        self._names = list(compiled.positiontup or ()) if compiled.positional else None
        processors = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        self._processors = {name: proc for name, proc in processors.items() if proc is not None}
        order = self._names if self._names is not None else list(processors)
        self._plan = [(name, processors[name]) for name in order]
        # the binds in statement order: an INSERT's columns, for a COPY of the same rows
        self.bind_names: list[str] = list(processors)

    def params(self, values: Mapping[str, Any]) -> Any:
        """``values`` by bind name (a bind left out keeps its compiled value) -> what the
        driver takes (tuple or dict), converted."""
        merged = {**self._defaults, **values}
        for name, processor in self._processors.items():
            merged[name] = processor(merged[name])
        if self._names is None:
            return merged
        return tuple(merged[name] for name in self._names)

    def many(self, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
        """Rows that each give every bind (an INSERT's columns) -> the driver's parameter
        list for ``executemany``, converted; one pass per row, as imports need."""
        plan = self._plan
        if self._names is not None:
            return [tuple([row[n] if p is None else p(row[n]) for n, p in plan]) for row in rows]
        return [{n: row[n] if p is None else p(row[n]) for n, p in plan} for row in rows]

    def tuples(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Any, ...]]:
        """Rows that each give every bind -> converted values in ``bind_names`` order."""
        plan = [(name, self._processors.get(name)) for name in self.bind_names]
        for row in rows:
            yield tuple([row[n] if p is None else p(row[n]) for n, p in plan])

"""A database's schema as comparable data: what `pg_dump --schema-only` shows, from the catalog.

Every relation, column, constraint, index, function (full definition), trigger, type and
view of the current schema, each with its definition as Postgres prints it. Two differences
are left out on purpose, because replaying migrations differs there from a one-shot schema
without any behavioural difference:

* column order: ``ALTER TABLE ... ADD COLUMN`` appends, a ``CREATE TABLE`` lists columns in
  its own order (procrastinate's SQL and ours name every column they use);
* enum sort positions: ``ADD VALUE ... AFTER`` stores fractional positions; the order of the
  labels, which is what comparisons use, is kept.
"""

from __future__ import annotations

from typing import Any

import psycopg

QUERIES = {
    "relations": """
        SELECT c.relname, c.relkind FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind <> 'c'
    """,
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0
          AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p', 'c')
    """,
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = current_schema()::regnamespace
    """,
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()
    """,
    "functions": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p
        WHERE p.pronamespace = current_schema()::regnamespace
    """,
    "triggers": """
        SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
    """,
    "types": """
        SELECT t.typname, t.typtype,
               array_agg(e.enumlabel ORDER BY e.enumsortorder) FILTER (WHERE e.oid IS NOT NULL)
        FROM pg_type t LEFT JOIN pg_enum e ON e.enumtypid = t.oid
        LEFT JOIN pg_class r ON r.oid = t.typrelid
        WHERE t.typnamespace = current_schema()::regnamespace
          AND (t.typtype IN ('e', 'd') OR (t.typtype = 'c' AND r.relkind = 'c'))
        GROUP BY t.typname, t.typtype
    """,
    "views": """
        SELECT viewname, pg_get_viewdef(viewname::regclass) FROM pg_views
        WHERE schemaname = current_schema()
    """,
    "sequences": """
        SELECT sequencename, data_type::text, start_value, increment_by FROM pg_sequences
        WHERE schemaname = current_schema()
    """,
}

Catalog = dict[str, set[tuple[Any, ...]]]


def catalog(url: str) -> Catalog:
    """The schema of the database at ``url``, one set of rows per kind of object."""
    with psycopg.connect(url) as conn:
        return {
            kind: {_hashable(row) for row in conn.execute(query).fetchall()}
            for kind, query in QUERIES.items()
        }


def _hashable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(tuple(v) if isinstance(v, list) else v for v in row)


def differences(left: Catalog, right: Catalog) -> dict[str, dict[str, list[str]]]:
    """What only one side has, per kind of object (empty when both schemas agree)."""
    out = {}
    for kind in QUERIES:
        only_left, only_right = left[kind] - right[kind], right[kind] - left[kind]
        if only_left or only_right:
            out[kind] = {
                "only left": sorted(str(row)[:300] for row in only_left),
                "only right": sorted(str(row)[:300] for row in only_right),
            }
    return out

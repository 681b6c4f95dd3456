"""Test databases on the PostgreSQL server: cloned from a migrated template, then reused.

`CREATE DATABASE ... TEMPLATE` costs ~0.3 s of server CPU (it copies the whole catalog),
emptying the tables a few milliseconds. So a database a test is done with is emptied and
handed to the next test, unless the test left more than a few rows behind: anything else in
its schema (a table it made, a column it added, a database setting), a migration it ran,
megabytes of rows, or a connection that will not go away. Such a database is dropped and the
next test gets a fresh clone. Each pytest process (each xdist worker) has a pool of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg
from psycopg import sql

# Everything a test could change besides rows: what exists in the user schemas (tables,
# columns and their defaults, constraints, indexes, triggers, functions, types, views),
# the migration recorded, and per-database settings.
SCHEMA_FINGERPRINT = """
WITH user_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema')
      AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'
)
SELECT md5(coalesce(string_agg(item, E'\\n' ORDER BY item), '')) FROM (
    SELECT 'namespace ' || nspname FROM user_ns
    UNION ALL
    SELECT 'relation ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
        || coalesce(' ' || pg_get_viewdef(c.oid), '')
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    UNION ALL
    SELECT 'column ' || n.nspname || '.' || c.relname || '.' || a.attname || ' '
        || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text
        || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN user_ns n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
        || pg_get_constraintdef(oid)
    FROM pg_constraint WHERE connamespace IN (SELECT oid FROM user_ns)
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace IN (SELECT oid FROM user_ns)
    UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(p.prosrc)
    FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM user_ns)
    UNION ALL
    SELECT 'type ' || t.typname FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM user_ns)
    UNION ALL
    SELECT 'extension ' || extname FROM pg_extension
    UNION ALL
    SELECT 'setting ' || array_to_string(setconfig, ',') FROM pg_db_role_setting
    WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL
    SELECT 'migration ' || version_num FROM alembic_version
) AS fingerprint(item)
"""

USER_TABLES = """
SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND tablename <> 'alembic_version'
ORDER BY 1
"""
SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences
WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""
USED_SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences
WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND last_value IS NOT NULL
"""
DATABASE_SIZE = "SELECT pg_database_size(current_database())"
# A database this much bigger than the template is dropped, not emptied: deleted rows stay
# on disk until vacuumed, and a test that wrote megabytes would slow the next ones' scans.
GROWTH_LIMIT_BYTES = 8 * 1024 * 1024
# Waits (up to 5 s each) until the backend is gone, not just signalled.
OTHER_CONNECTIONS_ENDED = """
SELECT count(*) FILTER (WHERE NOT pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


class DatabasePool:
    """Databases cloned from `template`, emptied between tests and reused."""

    def __init__(self, template: str, dsn_for: Callable[[str], str], admin_dsn: str) -> None:
        self._template = template
        self._dsn_for = dsn_for
        self._admin_dsn = admin_dsn
        self._idle: list[str] = []
        with psycopg.connect(dsn_for(template), autocommit=True) as conn:
            self._fingerprint = _one(conn, SCHEMA_FINGERPRINT)
            self._size_limit = int(str(_one(conn, DATABASE_SIZE))) + GROWTH_LIMIT_BYTES
            self._tables = [row[0] for row in conn.execute(USER_TABLES)]
            filled = [t for t in self._tables if conn.execute(_has_rows(t)).fetchone()]
            used = [row[0] for row in conn.execute(USED_SEQUENCES)]
        self._spoiled: set[str] = set()
        # Emptying must give back the template exactly: it holds no rows but its migration.
        if filled or used:
            raise RuntimeError(f"the template database has rows in {filled + used}")

    def take(self) -> str:
        if self._idle:
            return self._idle.pop()
        name = f"vlmhooks_test_{uuid.uuid4().hex[:12]}"
        self._admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self._template)
            )
        )
        return name

    def spoil(self, name: str) -> None:
        """Never reuse `name` (e.g. PgBouncer keeps server connections to it)."""
        self._spoiled.add(name)

    def give_back(self, name: str) -> None:
        if name not in self._spoiled and self._emptied(name):
            self._idle.append(name)
        else:
            self._spoiled.discard(name)
            self.drop(name)

    def drop(self, name: str) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def close(self) -> None:
        while self._idle:
            self.drop(self._idle.pop())

    def _emptied(self, name: str) -> bool:
        """Empty the database and say whether it is now as the template was."""
        try:
            with psycopg.connect(self._dsn_for(name), autocommit=True) as conn:
                if _one(conn, OTHER_CONNECTIONS_ENDED) != 0:
                    return False
                if _one(conn, SCHEMA_FINGERPRINT) != self._fingerprint:
                    return False
                if int(str(_one(conn, DATABASE_SIZE))) > self._size_limit:
                    return False
                # A few rows each: DELETE is cheaper than TRUNCATE, which makes and syncs new
                # files. Foreign keys are not checked (replica role), nor the commit waited for.
                conn.execute("SET synchronous_commit = off")
                conn.execute("SET session_replication_role = replica")
                with conn.transaction():
                    for table in self._tables:
                        conn.execute(sql.SQL("DELETE FROM {}").format(sql.SQL(table)))
                    for (sequence,) in conn.execute(SEQUENCES).fetchall():
                        conn.execute(sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.SQL(sequence)))
                return True
        except psycopg.Error:
            return False

    def _admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(self._admin_dsn, autocommit=True) as conn:
            conn.execute(statement)


def _one(conn: psycopg.Connection[tuple[object, ...]], query: str) -> object:
    row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


def _has_rows(table: str) -> sql.Composed:
    return sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.SQL(table))

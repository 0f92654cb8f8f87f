"""Lightweight handles on analytics tables for bulk inserts (the DDL lives in ``sql/``).

Columns are untyped on purpose: values reach the driver as they are, exactly as with the
text queries, so timestamps are stored the same way by both code paths.
"""

from __future__ import annotations

import sqlalchemy as sa

CHATWOOT_CONVERSATION_COLUMNS = (
    "tenant_id", "conversation_id", "day", "display_id", "inbox_id", "inbox_name", "status",
    "conversation_created_at", "conversation_updated_at", "last_activity_at", "contact_name",
    "contact_messages_count", "message_compiled", "content_hash", "extracted_at", "labels", "outcome",
)
PENDING_COLUMNS = ("tenant_id", "conversation_id", "day", "content_hash", "reason", "provisional", "queued_at")
ANALYSIS_COLUMNS = (
    "tenant_id", "conversation_id", "content_hash", "analyzer", "model", "prompt_version", "is_lead",
    "visita_agendada", "probabilidade_conversao", "nome_mapeado_bot", "analise_ia", "prompt_tokens",
    "cached_tokens", "completion_tokens", "cost_usd", "analyzed_at",
)
LLM_USAGE_COLUMNS = (
    "tenant_id", "conversation_id", "model", "prompt_tokens", "cached_tokens", "completion_tokens",
    "total_tokens", "cost_usd", "cost_brl", "latency_ms", "attempt", "status", "error_kind", "run_id", "created_at",
    "priced", "mode", "batch_id",
)

chatwoot_conversations = sa.table("chatwoot_conversations", *(sa.column(c) for c in CHATWOOT_CONVERSATION_COLUMNS))
pending_conversations = sa.table("pending_conversations", *(sa.column(c) for c in PENDING_COLUMNS))
conversation_analyses = sa.table("conversation_analyses", *(sa.column(c) for c in ANALYSIS_COLUMNS))
llm_usage = sa.table("llm_usage", *(sa.column(c) for c in LLM_USAGE_COLUMNS))


def ledger_row(record, run_id: str | None) -> dict:
    """The ``llm_usage`` row of one API attempt (a ``CallRecord``), real time or batch alike."""
    row = {column: getattr(record, column, None) for column in LLM_USAGE_COLUMNS}
    row["run_id"] = run_id
    row["mode"] = row["mode"] or "realtime"
    row["priced"] = True if row["priced"] is None else bool(row["priced"])
    return row


def insert_rows(conn: sa.Connection, table: sa.TableClause, rows: list[dict]) -> int:
    """Bulk insert inside the connection's transaction: COPY on psycopg 3 (several times faster
    than batched INSERTs for the 100,000-row days), a multi-row INSERT elsewhere."""
    if not rows:
        return 0
    if conn.dialect.driver == "psycopg":
        columns = list(rows[0])
        with conn.connection.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
    else:
        conn.execute(table.insert(), rows)
    return len(rows)


def insert_ignore_duplicates(conn: sa.Connection, table: sa.TableClause, rows: list[dict], key: tuple[str, ...]) -> int:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` on PostgreSQL and SQLite alike."""
    if not rows:
        return 0
    if conn.dialect.driver == "psycopg" and len(rows) >= _STAGING_THRESHOLD:
        return _copy_ignore_duplicates(conn, table, rows, key)
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(table).on_conflict_do_nothing(index_elements=list(key)), rows)
    return len(rows)


# Below this, a multi-row INSERT is as fast as creating a staging table.
_STAGING_THRESHOLD = 500


def _copy_ignore_duplicates(conn: sa.Connection, table: sa.TableClause, rows: list[dict], key: tuple[str, ...]) -> int:
    """COPY into a temporary copy of ``table``, then one INSERT ... SELECT ... ON CONFLICT DO NOTHING:
    a regex chunk stores 20,000 answers, which batched INSERTs take seconds to send."""
    staging = f"staging_{table.name}"
    columns = ", ".join(rows[0])
    # ON COMMIT DROP: a failed statement rolls the staging table back with everything else.
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {columns} FROM {table.name} WITH NO DATA"
    )
    insert_rows(conn, sa.table(staging), rows)
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {staging} ON CONFLICT ({', '.join(key)}) DO NOTHING"
    )
    conn.exec_driver_sql(f"DROP TABLE {staging}")
    return len(rows)

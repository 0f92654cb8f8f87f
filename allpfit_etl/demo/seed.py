"""Demo and benchmark data in the real Chatwoot schema.

``seed_demo`` writes deterministic, realistic PT-BR gym conversations for four tenants, with
every edge case the pipeline must survive. ``seed_bulk`` writes large synthetic days fast
(``COPY`` on PostgreSQL) for the benchmarks. ``add_message`` appends one message, as Chatwoot
would, for tests of incremental runs and sensors.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from allpfit_etl.db import load_sql, split_statements
from allpfit_etl.demo import labels, phrases

INCOMING, OUTGOING, ACTIVITY, TEMPLATE = 0, 1, 2, 3
TABLES = ("accounts", "inboxes", "contacts", "conversations", "messages", "attachments")


@dataclass(frozen=True)
class DemoTenant:
    slug: str
    name: str
    account_id: int
    conversations: int


DEMO_TENANTS = (
    DemoTenant("allpfit", "AllpFit", 1, 1300),
    DemoTenant("cdt_mossoro", "CDT Mossoró", 2, 420),
    DemoTenant("investbem", "InvestBem", 3, 300),
    DemoTenant("cdt_jp_sul", "CDT JP Sul", 4, 260),
)
DEMO_END_DATE = dt.date(2025, 11, 16)
DEMO_DAYS = 14  # two weeks: enough to plot, and the demo finishes in under a minute


def create_chatwoot_schema(engine: sa.Engine) -> None:
    """Create the Chatwoot tables the pipeline reads (idempotent)."""
    with engine.begin() as conn:
        for statement in split_statements(load_sql("chatwoot/schema", engine.dialect.name)):
            conn.execute(sa.text(statement))


def _utc_naive(local: dt.datetime) -> dt.datetime:
    return local.astimezone(dt.timezone.utc).replace(tzinfo=None)


class _Rows:
    """Accumulates rows with explicit, deterministic ids."""

    def __init__(self, start_ids: dict[str, int]):
        self.next_id = dict(start_ids)
        self.rows: dict[str, list[dict]] = {table: [] for table in TABLES}

    def add(self, table: str, row: dict) -> int:
        row_id = self.next_id[table]
        self.next_id[table] += 1
        self.rows[table].append({"id": row_id, **row})
        return row_id


def _max_ids(conn: sa.Connection) -> dict[str, int]:
    return {t: int(conn.execute(sa.text(f"SELECT COALESCE(MAX(id), 0) FROM {t}")).scalar_one()) + 1 for t in TABLES}


def _counts(conn: sa.Connection, account_ids: list[int]) -> dict[str, int]:
    ids = ", ".join(str(int(a)) for a in account_ids)
    where = {"accounts": f"id IN ({ids})"}
    return {t: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {t} WHERE {where.get(t, f'account_id IN ({ids})')}")).scalar_one())
            for t in TABLES}


def _insert_all(conn: sa.Connection, rows: dict[str, list[dict]]) -> None:
    for table in TABLES:
        # executemany needs identical keys per row
        by_columns: dict[tuple, list[dict]] = {}
        for row in rows[table]:
            by_columns.setdefault(tuple(row), []).append(row)
        for columns, group in by_columns.items():
            statement = sa.text(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
            )
            conn.execute(statement, group)


def _reset_sequences(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        for table in TABLES:
            conn.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            ))


def seed_demo(
    engine: sa.Engine,
    *,
    seed: int = 7,
    tenants=DEMO_TENANTS,
    end_date: dt.date = DEMO_END_DATE,
    days: int = DEMO_DAYS,
    timezone: str = "America/Sao_Paulo",
) -> dict[str, int]:
    """Write the demo conversations; a second call changes nothing and returns the same counts."""
    account_ids = [t.account_id for t in tenants]
    with engine.begin() as conn:
        existing = conn.execute(
            sa.text("SELECT COUNT(*) FROM accounts WHERE id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": account_ids},
        ).scalar_one()
        if existing:
            return _counts(conn, account_ids)
        rows = _Rows(_max_ids(conn))
        nul_as_text = engine.dialect.name == "sqlite"
        for tenant in tenants:
            _DemoTenantWriter(rows, tenant, random.Random(f"{seed}:{tenant.slug}"), end_date, days, timezone, nul_as_text).write()
        _insert_all(conn, rows.rows)
        _reset_sequences(conn)
        return _counts(conn, account_ids)


class _DemoTenantWriter:
    def __init__(self, rows: _Rows, tenant: DemoTenant, rng: random.Random, end_date, days, timezone, nul_as_text):
        self.rows, self.tenant, self.rng = rows, tenant, rng
        self.end_date, self.days, self.tz = end_date, days, ZoneInfo(timezone)
        self.nul_as_text = nul_as_text
        self.display_id = 0
        # labels from a generator of their own: the conversations and messages stay the same
        self.label_rng = random.Random(f"labels:{tenant.slug}:{rng.getstate()[1][:4]}")  # reads, draws nothing

    def write(self) -> None:
        t, created = self.tenant, dt.datetime(2024, 6, 1)
        self.rows.add("accounts", {"name": t.name, "created_at": created, "updated_at": created})
        self.rows.rows["accounts"][-1]["id"] = t.account_id
        self.inboxes = [
            self.rows.add("inboxes", {"channel_id": i + 1, "account_id": t.account_id, "name": name, "created_at": created,
                                      "updated_at": created, "channel_type": kind})
            for i, (name, kind) in enumerate([(f"WhatsApp {t.name}", "Channel::Whatsapp"),
                                              (f"Site {t.name}", "Channel::WebWidget"),
                                              (f"E-mail {t.name}", "Channel::Email")])
        ]
        kinds = phrases.CONVERSATION_KINDS
        for index in range(t.conversations):
            # the first conversations of every tenant carry the edge cases, the rest is a realistic mix
            kind = phrases.EDGE_CASE_KINDS[index] if index < len(phrases.EDGE_CASE_KINDS) else self.rng.choices(
                [k for k, _ in kinds], weights=[w for _, w in kinds])[0]
            self._conversation(index, kind)

    def _start_time(self, index: int) -> dt.datetime:
        day = self.end_date - dt.timedelta(days=self.rng.randrange(self.days))
        if index % 97 == 5:  # near midnight, local time: the UTC date is the next day
            local = dt.datetime.combine(day, dt.time(23, self.rng.randrange(30, 59)), tzinfo=self.tz)
        elif index % 97 == 6:
            local = dt.datetime.combine(day, dt.time(0, self.rng.randrange(1, 30)), tzinfo=self.tz)
        else:
            local = dt.datetime.combine(day, dt.time(self.rng.randrange(6, 23), self.rng.randrange(60)), tzinfo=self.tz)
        return _utc_naive(local)

    def _contact_name(self, kind: str) -> str | None:
        if kind == "nameless_empty":
            return ""
        if kind == "nameless_null":
            return None
        roll = self.rng.random()
        if roll < 0.08:
            return f"+55 84 9{self.rng.randrange(1000, 9999)}-{self.rng.randrange(1000, 9999)}"
        if roll < 0.12:
            return ""
        first, last = self.rng.choice(phrases.FIRST_NAMES), self.rng.choice(phrases.LAST_NAMES)
        name = f"{first} {last}" if self.rng.random() < 0.6 else first
        if kind == "nul_in_name" and self.nul_as_text:
            name = f"{first}\x00 {last}"
        return name

    def _conversation(self, index: int, kind: str) -> None:
        t, rng = self.tenant, self.rng
        start = self._start_time(index)
        name = self._contact_name(kind)
        contact = self.rows.add("contacts", {"name": name, "account_id": t.account_id, "created_at": start,
                                             "updated_at": start,
                                             "phone_number": f"+55849{rng.randrange(10_000_000, 99_999_999)}"})
        self.display_id += 1
        inbox = self.inboxes[2] if kind == "email_nul" else self.inboxes[0 if rng.random() < 0.85 else 1]
        steps = phrases.script(kind, rng, t.name, first_name=(name or "").split(" ")[0] or None)
        at = start
        messages = []
        for step in steps:
            at += dt.timedelta(seconds=rng.randrange(20, 600))
            messages.append((at, step))
        status = rng.choices([0, 1, 2, 3], weights=[30, 55, 10, 5])[0]
        last = messages[-1][0] if messages else start
        label_list, attributes = labels.recorded(t.slug, kind, self.label_rng)
        conversation = self.rows.add("conversations", {
            "account_id": t.account_id, "inbox_id": inbox, "status": status, "created_at": start, "updated_at": last,
            "contact_id": contact, "display_id": self.display_id, "last_activity_at": last,
            "cached_label_list": label_list, "custom_attributes": attributes,
        })
        for at, step in messages:
            self._message(conversation, inbox, at, step)

    def _message(self, conversation: int, inbox: int, at: dt.datetime, step: "phrases.Step") -> None:
        content, attributes = step.text, dict(step.attributes)
        if step.nul:
            if self.nul_as_text:
                content = content.replace("|NUL|", "\x00")
            else:  # PostgreSQL text cannot hold NUL: it travels escaped inside the json column
                attributes = {"email": {"subject": "Informações", "text_content": {
                    "full": content.replace("|NUL|", "\u0000"), "reply": content.replace("|NUL|", "\u0000")}}}
                content = None
        message = self.rows.add("messages", {
            "content": content, "account_id": self.tenant.account_id, "inbox_id": inbox, "conversation_id": conversation,
            "message_type": step.message_type, "created_at": at, "updated_at": at, "private": step.private,
            "sender_type": step.sender_type, "content_attributes": json.dumps(attributes),
        })
        if step.attachment is not None:
            self.rows.add("attachments", {"file_type": step.attachment, "message_id": message,
                                          "account_id": self.tenant.account_id, "created_at": at, "updated_at": at})


def _ensure_account(conn: sa.Connection, account_id: int) -> int:
    """Account and inbox for bulk data; returns the inbox id."""
    now = dt.datetime(2024, 6, 1)
    if not conn.execute(sa.text("SELECT 1 FROM accounts WHERE id = :id"), {"id": account_id}).first():
        conn.execute(sa.text("INSERT INTO accounts (id, name, created_at, updated_at) VALUES (:id, :n, :t, :t)"),
                     {"id": account_id, "n": f"Bench {account_id}", "t": now})
    inbox = conn.execute(sa.text("SELECT MIN(id) FROM inboxes WHERE account_id = :a"), {"a": account_id}).scalar()
    if inbox is None:
        inbox = int(conn.execute(sa.text("SELECT COALESCE(MAX(id), 0) + 1 FROM inboxes")).scalar_one())
        conn.execute(sa.text(
            "INSERT INTO inboxes (id, channel_id, account_id, name, created_at, updated_at, channel_type)"
            " VALUES (:id, 1, :a, 'WhatsApp', :t, :t, 'Channel::Whatsapp')"), {"id": inbox, "a": account_id, "t": now})
    return int(inbox)


BULK_COLUMNS = {
    "contacts": ("id", "name", "account_id", "created_at", "updated_at"),
    "conversations": ("id", "account_id", "inbox_id", "status", "created_at", "updated_at", "contact_id", "display_id",
                      "last_activity_at"),
    "messages": ("id", "content", "account_id", "inbox_id", "conversation_id", "message_type", "created_at", "updated_at",
                 "private", "sender_type", "content_attributes"),
}


def seed_bulk(
    engine: sa.Engine,
    *,
    account_id: int,
    day: dt.date,
    conversations: int,
    messages_per_conversation: int = 10,
    timezone: str = "America/Sao_Paulo",
    seed: int = 1,
    first_id: int | None = None,
) -> int:
    """Write ``conversations`` synthetic conversations created on the local ``day``, fast."""
    rng = random.Random(seed)
    tz = ZoneInfo(timezone)
    day_start = _utc_naive(dt.datetime.combine(day, dt.time.min, tzinfo=tz))
    with engine.begin() as conn:
        inbox = _ensure_account(conn, account_id)
        ids = _max_ids(conn)
        base = first_id if first_id is not None else max(ids["contacts"], ids["conversations"])
        message_id = max(ids["messages"], base * messages_per_conversation)
        display = int(conn.execute(sa.text("SELECT COALESCE(MAX(display_id), 0) FROM conversations WHERE account_id = :a"),
                                   {"a": account_id}).scalar_one())
        tables: dict[str, list[tuple]] = {t: [] for t in BULK_COLUMNS}
        for n in range(conversations):
            cid = base + n
            start = day_start + dt.timedelta(seconds=rng.randrange(0, 86_000 - 60 * messages_per_conversation))
            name = f"{rng.choice(phrases.FIRST_NAMES)} {rng.choice(phrases.LAST_NAMES)}"
            at = start
            for m in range(messages_per_conversation):
                at += dt.timedelta(seconds=rng.randrange(5, 60))
                incoming = m % 2 == 0
                text = phrases.bulk_line(rng, incoming, cid, m)
                tables["messages"].append((message_id, text, account_id, inbox, cid, INCOMING if incoming else OUTGOING,
                                           at, at, False, "Contact" if incoming else "User", "{}"))
                message_id += 1
            tables["contacts"].append((cid, name, account_id, start, start))
            tables["conversations"].append((cid, account_id, inbox, rng.choice((0, 1)), start, at, cid, display + n + 1, at))
        for table, rows in tables.items():
            _bulk_write(conn, table, BULK_COLUMNS[table], rows)
        _reset_sequences(conn)
    with engine.begin() as conn:  # fresh statistics, as a live database has, so plans are realistic
        for table in BULK_COLUMNS:
            conn.execute(sa.text(f"ANALYZE {table}"))
    return conversations


def _bulk_write(conn: sa.Connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cursor:  # psycopg 3's COPY
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
    else:
        statement = sa.text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})")
        for start in range(0, len(rows), 20_000):
            conn.execute(statement, [dict(zip(columns, row)) for row in rows[start:start + 20_000]])


def add_message(
    engine: sa.Engine,
    *,
    account_id: int,
    conversation_id: int,
    content: str,
    message_type: int = INCOMING,
    sender_type: str = "Contact",
    at: dt.datetime | None = None,
) -> int:
    """Append one message and bump the conversation, as Chatwoot does; returns the message id."""
    at = at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        inbox = conn.execute(sa.text("SELECT inbox_id FROM conversations WHERE id = :c AND account_id = :a"),
                             {"c": conversation_id, "a": account_id}).scalar_one()
        message_id = conn.execute(sa.text(
            "INSERT INTO messages (content, account_id, inbox_id, conversation_id, message_type, created_at, updated_at,"
            " private, sender_type, content_attributes) VALUES (:content, :a, :inbox, :c, :t, :at, :at, FALSE, :s, '{}')"
            " RETURNING id"),
            {"content": content, "a": account_id, "inbox": inbox, "c": conversation_id, "t": message_type, "at": at,
             "s": sender_type}).scalar_one()
        conn.execute(sa.text("UPDATE conversations SET updated_at = :at, last_activity_at = :at WHERE id = :c"),
                     {"at": at, "c": conversation_id})
    return int(message_id)

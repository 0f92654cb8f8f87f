"""A tiny Chatwoot database written row by row, for tests that need exact contents."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from allpfit_etl.demo.seed import create_chatwoot_schema


class ChatwootBuilder:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        create_chatwoot_schema(engine)
        self._ids = {"accounts": 0, "inboxes": 0, "contacts": 0, "conversations": 0, "messages": 0, "attachments": 0}
        self._display = {}
        self.inboxes: dict[int, int] = {}  # account id → its WhatsApp inbox

    def _next(self, table: str) -> int:
        self._ids[table] += 1
        return self._ids[table] + 1000  # clear of anything a seed may have written

    def _insert(self, table: str, row: dict) -> int:
        columns = ", ".join(row)
        values = ", ".join(f":{k}" for k in row)
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)
        return row["id"]

    def account(self, name: str) -> int:
        now = dt.datetime(2025, 1, 1)
        account_id = self._insert("accounts", {"id": self._next("accounts"), "name": name, "created_at": now, "updated_at": now})
        self.inboxes[account_id] = self._insert("inboxes", {
            "id": self._next("inboxes"), "channel_id": 1, "account_id": account_id, "name": f"WhatsApp {name}",
            "created_at": now, "updated_at": now, "channel_type": "Channel::Whatsapp",
        })
        self._display[account_id] = 0
        return account_id

    def conversation(self, account_id: int, created_at: dt.datetime, contact_name: str | None, status: int = 0, *,
                     labels: str | None = None, custom_attributes: dict | None = None,
                     contact_attributes: dict | None = None) -> int:
        contact = self._insert("contacts", {
            "id": self._next("contacts"), "name": contact_name, "account_id": account_id,
            "created_at": created_at, "updated_at": created_at,
            "custom_attributes": json.dumps(contact_attributes or {}),
        })
        self._display[account_id] += 1
        inbox = self.inboxes[account_id]
        return self._insert("conversations", {
            "id": self._next("conversations"), "account_id": account_id, "inbox_id": inbox, "status": status,
            "created_at": created_at, "updated_at": created_at, "contact_id": contact,
            "display_id": self._display[account_id], "last_activity_at": created_at,
            "cached_label_list": labels, "custom_attributes": json.dumps(custom_attributes or {}),
        })

    def set_labels(self, conversation_id: int, labels: str | None, at: dt.datetime) -> None:
        """Add or remove labels as an agent does: Chatwoot rewrites the list and bumps updated_at only."""
        with self.engine.begin() as conn:
            conn.execute(sa.text("UPDATE conversations SET cached_label_list = :labels, updated_at = :at WHERE id = :id"),
                         {"labels": labels, "at": at, "id": conversation_id})

    def message(
        self, account_id: int, conversation_id: int, at: dt.datetime, content: str | None, *,
        message_type: int = 0, sender_type: str | None = "Contact", private: bool = False,
        content_attributes: dict | None = None, attachment_type: int | None = None,
    ) -> int:
        attributes = json.dumps(content_attributes or {})  # \u0000 stays escaped: json (not jsonb) keeps it
        message_id = self._insert("messages", {
            "id": self._next("messages"), "content": content, "account_id": account_id, "inbox_id": self.inboxes[account_id],
            "conversation_id": conversation_id, "message_type": message_type, "created_at": at, "updated_at": at,
            "private": private, "sender_type": sender_type, "content_attributes": attributes,
        })
        if attachment_type is not None:
            self._insert("attachments", {
                "id": self._next("attachments"), "file_type": attachment_type, "message_id": message_id,
                "account_id": account_id, "created_at": at, "updated_at": at,
            })
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE conversations SET updated_at = :at, last_activity_at = :at WHERE id = :id"),
                {"at": at, "id": conversation_id},
            )
        return message_id

"""Timestamps and dates as the databases return them (PostgreSQL: objects; SQLite: ISO text)."""

from __future__ import annotations

import datetime as dt


def as_utc(value) -> dt.datetime | None:
    """Chatwoot timestamp (naive UTC datetime, or text on SQLite) → aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def as_date(value) -> dt.date:
    """A DATE column's value: a date from PostgreSQL, ISO text from SQLite."""
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])

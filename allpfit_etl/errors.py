"""User-facing errors: one clear line naming the problem, never a secret."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z0-9+]+://[^:/@\s]+):[^@\s]+@")


class AllpfitError(Exception):
    """An error the CLI prints as a single line and exits with status 2."""


class UnknownTenantError(AllpfitError):
    pass


class DatabaseUnreachableError(AllpfitError):
    pass


class ConfigError(AllpfitError):
    pass


def redact(text: str) -> str:
    """Remove passwords embedded in database URLs (``user:secret@host``)."""
    return _URL_PASSWORD.sub(r"\g<scheme>:***@", text)


def root_cause_line(error) -> str:
    """``Class: first line`` of the innermost cause of a Dagster ``SerializableErrorInfo``:
    the user's error, not the wrappers around it."""
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    first_line = message.splitlines()[0] if message else ""
    named, _, rest = first_line.partition(": ")
    if rest and named.rsplit(".", 1)[-1] == error.cls_name:  # "package.module.Class: text" → "Class: text"
        return f"{error.cls_name}: {rest}"
    return first_line if first_line.startswith(error.cls_name) else f"{error.cls_name}: {first_line}"

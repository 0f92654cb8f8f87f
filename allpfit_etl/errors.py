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

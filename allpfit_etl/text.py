"""Make any text safe for a PostgreSQL ``text`` column.

PostgreSQL rejects NUL (0x00) and invalid UTF-8 (lone surrogates, which JSON escapes can
produce). Other C0 control characters are accepted but are noise in a transcript, so
they go too; tab and newline stay.
"""

from __future__ import annotations

import re

# C0 controls except \t and \n, plus DEL; \r is normalised to \n separately.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Writers that double-escape JSON leave the six characters "\u0000" in plain text.
_ESCAPED_NUL = re.compile(r"\\u0000", re.IGNORECASE)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# One scan decides whether any cleaning is needed: most texts are already clean.
_ANYTHING_TO_CLEAN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]|\\u0000", re.IGNORECASE)


def sanitize_text(value: str | None) -> str | None:
    """Return ``value`` without characters PostgreSQL rejects; ``None`` stays ``None``."""
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    if not _ANYTHING_TO_CLEAN.search(value):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = _ESCAPED_NUL.sub("", value)
    value = _CONTROL.sub("", value)
    if _SURROGATE.search(value):
        value = _SURROGATE.sub("\ufffd", value)
    return value


def sanitize_record(record: dict) -> dict:
    """Sanitise every string value of a mapping (nested dicts and lists included)."""
    return {key: _sanitize_any(value) for key, value in record.items()}


def _sanitize_any(value):
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, dict):
        return sanitize_record(value)
    if isinstance(value, list):
        return [_sanitize_any(item) for item in value]
    return value



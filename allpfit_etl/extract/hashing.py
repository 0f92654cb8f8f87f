"""Content hash of a compiled conversation: the key that decides whether it must be re-analysed."""

from __future__ import annotations

import hashlib


def content_hash(message_compiled: str, contact_name: str | None = None) -> str:
    """SHA-256 (hex) of the transcript and the contact's display name.

    The name is part of the hash because ``nome_mapeado_bot`` depends on it.
    """
    digest = hashlib.sha256()
    digest.update((contact_name or "").encode("utf-8"))
    digest.update(b"\x1f")
    digest.update(message_compiled.encode("utf-8"))
    return digest.hexdigest()

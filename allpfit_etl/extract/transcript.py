"""Compile a Chatwoot conversation's messages into the transcript the analysers read.

One line per message, chronological: ``[dd/mm HH:MM] Contato: texto``. Speakers are
``Contato`` (incoming), ``Atendente`` (an agent) and ``Bot`` (agent bots, assistants,
templates and automated messages). Private notes and activity messages never appear.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any, Callable, Iterable, NamedTuple
from zoneinfo import ZoneInfo

from allpfit_etl.text import sanitize_text

# Chatwoot enums (app/models/message.rb, app/models/attachment.rb)
INCOMING, OUTGOING, ACTIVITY, TEMPLATE = 0, 1, 2, 3
BOT_SENDER_TYPES = {"AgentBot", "Captain::Assistant"}

SPEAKER_CONTACT = "Contato"
SPEAKER_AGENT = "Atendente"
SPEAKER_BOT = "Bot"

ATTACHMENT_PLACEHOLDERS = {
    0: "[imagem]",
    1: "[áudio]",
    2: "[vídeo]",
    3: "[arquivo]",
    4: "[localização]",
    5: "[anexo]",
    6: "[compartilhamento]",
    7: "[menção em story]",
    8: "[contato]",
    9: "[reel]",
}
GENERIC_PLACEHOLDER = "[anexo sem texto]"
DELETED_PLACEHOLDER = "[mensagem apagada]"


class SourceMessage(NamedTuple):
    """The columns of a Chatwoot ``messages`` row the transcript needs (a tuple: a big day has
    millions of them)."""

    created_at: dt.datetime
    message_type: int
    private: bool
    sender_type: str | None
    content: str | None
    content_attributes: Any = None  # JSON text or already-parsed dict
    attachment_type: int | None = None


def speaker_of(message: SourceMessage) -> str | None:
    """Label of the speaker, or ``None`` when the message never reaches the transcript."""
    if message.private or message.message_type == ACTIVITY:
        return None
    if message.message_type == INCOMING:
        return SPEAKER_CONTACT
    if message.message_type == TEMPLATE or message.sender_type in BOT_SENDER_TYPES or message.sender_type is None:
        return SPEAKER_BOT
    return SPEAKER_AGENT


def _attributes(raw: Any) -> dict:
    if raw is None or raw == "" or raw == "{}":
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text_from_attributes(attributes: dict) -> str | None:
    """Text Chatwoot keeps in ``content_attributes`` when ``content`` is empty (e-mail, forms)."""
    email = attributes.get("email")
    if isinstance(email, dict):
        text_content = email.get("text_content")
        if isinstance(text_content, dict):
            for key in ("reply", "full"):
                if isinstance(text_content.get(key), str) and text_content[key].strip():
                    return text_content[key]
    submitted = attributes.get("submitted_values")
    if isinstance(submitted, list):
        values = [str(item.get("title") or item.get("value") or "") for item in submitted if isinstance(item, dict)]
        joined = ", ".join(v for v in values if v)
        if joined:
            return joined
    return None


def message_text(message: SourceMessage) -> str:
    """The message's text, a placeholder when it has none; always sanitised, one line."""
    raw = message.content_attributes
    # Most messages have no attributes: skip parsing them (a day holds millions of messages).
    attributes = {} if raw is None or raw == "{}" else _attributes(raw)
    if attributes.get("deleted"):
        return DELETED_PLACEHOLDER
    content = message.content
    text = content if content and not content.isspace() else _text_from_attributes(attributes)
    text = sanitize_text(text)
    one_line = " ".join(text.split()) if text else ""
    return one_line or ATTACHMENT_PLACEHOLDERS.get(message.attachment_type, GENERIC_PLACEHOLDER)


_MINUTE = dt.timedelta(minutes=1)
_UTC = dt.timezone.utc


@functools.lru_cache(maxsize=16)
def _stamper(timezone: str) -> Callable[[dt.datetime | str], str]:
    """``ts -> "[dd/mm HH:MM]"`` in ``timezone``, memoised per UTC minute: converting every one of
    millions of messages through ZoneInfo costs more than the rest of the transcript."""
    tz = ZoneInfo(timezone)
    by_minute: dict[tuple[int, int, int, int, int], str] = {}

    def exact(ts: dt.datetime) -> str:
        t = ts.replace(tzinfo=_UTC).astimezone(tz)
        return f"[{t.day:02d}/{t.month:02d} {t.hour:02d}:{t.minute:02d}]"

    def stamp(ts: dt.datetime | str) -> str:
        if isinstance(ts, str):
            ts = dt.datetime.fromisoformat(ts)
        if ts.tzinfo is not None:
            ts = ts.astimezone(_UTC).replace(tzinfo=None)
        # Chatwoot stores UTC in timestamp-without-time-zone columns: ts is naive UTC here.
        key = (ts.year, ts.month, ts.day, ts.hour, ts.minute)  # cheaper than ts.replace(...)
        text = by_minute.get(key)
        if text is None:
            minute = ts.replace(second=0, microsecond=0)
            first, last = minute.replace(tzinfo=_UTC), (minute + _MINUTE).replace(tzinfo=_UTC) - dt.timedelta.resolution
            offset = first.astimezone(tz).utcoffset()
            # The minute shares one stamp unless an offset change or a sub-minute offset falls in it.
            if offset != last.astimezone(tz).utcoffset() or offset % _MINUTE:
                return exact(ts)
            if len(by_minute) > 100_000:
                by_minute.clear()
            text = by_minute[key] = exact(minute)
        return text

    return stamp


def compile_transcript(messages: Iterable[SourceMessage], timezone: str = "America/Sao_Paulo") -> str:
    """Chronological, speaker-labelled transcript of a conversation's public messages."""
    stamp = _stamper(timezone)
    lines = []
    for message in messages:
        speaker = speaker_of(message)
        if speaker is not None:
            lines.append(f"{stamp(message.created_at)} {speaker}: {message_text(message)}")
    return "\n".join(lines)


def count_contact_messages(messages: Iterable[SourceMessage]) -> int:
    return sum(1 for m in messages if m.message_type == INCOMING and not m.private)

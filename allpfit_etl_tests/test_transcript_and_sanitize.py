"""Pure functions of the extract step: sanitising, transcript compilation, hashing."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from allpfit_etl.extract.hashing import content_hash
from allpfit_etl.text import sanitize_record, sanitize_text
from allpfit_etl.extract.transcript import (
    ACTIVITY,
    INCOMING,
    OUTGOING,
    TEMPLATE,
    SourceMessage,
    compile_transcript,
    count_contact_messages,
    message_text,
)

T0 = dt.datetime(2025, 11, 10, 13, 0)  # naive UTC, as Chatwoot stores it: 10:00 in São Paulo


def msg(minutes, message_type, content, sender_type="Contact", private=False, attributes=None, attachment=None):
    return SourceMessage(T0 + dt.timedelta(minutes=minutes), message_type, private, sender_type, content, attributes, attachment)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("oi\x00 tudo bem", "oi tudo bem"),
        ("a\\u0000b", "ab"),
        ("linha1\r\nlinha2\rlinha3", "linha1\nlinha2\nlinha3"),
        ("tab\tok\x07bell", "tab\tokbell"),
        ("emoji 🏋️‍♀️ 👍🏽 ok", "emoji 🏋️‍♀️ 👍🏽 ok"),
        ("lone \ud83d surrogate", "lone \ufffd surrogate"),
        (None, None),
    ],
)
def test_sanitize_text(raw, expected):
    assert sanitize_text(raw) == expected


def test_sanitize_record_walks_nested_values():
    cleaned = sanitize_record({"a": "x\x00", "b": {"c": ["y\x00", 1, "w\\u0000z"]}, "d": None})
    assert cleaned == {"a": "x", "b": {"c": ["y", 1, "wz"]}, "d": None}
    # json.dumps writes a NUL as the six characters \u0000 (which jsonb refuses), never as a raw NUL
    assert "\\u0000" not in json.dumps(cleaned)
    assert "\\u0000" in json.dumps({"a": "x\x00"})  # the check above would see a NUL that survived


def has_forbidden_characters(value: str) -> bool:
    return "\x00" in value or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)


def test_sanitize_text_removes_nul_and_lone_surrogates_and_keeps_clean_text():
    assert sanitize_text("clean 🏋️ text\n") == "clean 🏋️ text\n"
    for dirty in ("x\x00y", "lone \ud83d"):
        assert has_forbidden_characters(dirty) and not has_forbidden_characters(sanitize_text(dirty))


def test_transcript_labels_speakers_and_drops_private_notes_and_activity():
    messages = [
        msg(0, INCOMING, "Oi, qual o valor da mensalidade?"),
        msg(1, OUTGOING, "Olá! Sou a assistente virtual 🤖", sender_type="AgentBot"),
        msg(2, OUTGOING, "cliente devendo, não dar desconto", sender_type="User", private=True),
        msg(3, ACTIVITY, "Conversa atribuída a Ana", sender_type=None),
        msg(4, OUTGOING, "O plano mensal custa R$ 99,90", sender_type="User"),
        msg(5, TEMPLATE, "Avalie nosso atendimento", sender_type=None),
    ]
    transcript = compile_transcript(messages)
    assert transcript.splitlines() == [
        "[10/11 10:00] Contato: Oi, qual o valor da mensalidade?",
        "[10/11 10:01] Bot: Olá! Sou a assistente virtual 🤖",
        "[10/11 10:04] Atendente: O plano mensal custa R$ 99,90",
        "[10/11 10:05] Bot: Avalie nosso atendimento",
    ]
    assert "devendo" not in transcript and "atribuída" not in transcript
    assert count_contact_messages(messages) == 1


def test_transcript_placeholders_email_fallback_and_nul():
    email = json.dumps({"email": {"text_content": {"full": "Quero saber\u0000 os planos", "reply": ""}}})
    messages = [
        msg(0, INCOMING, None, attachment=0),
        msg(1, INCOMING, "", attachment=1),
        msg(2, INCOMING, None),
        msg(3, INCOMING, None, attributes=email),
        msg(4, INCOMING, "texto apagado", attributes={"deleted": True}),
        msg(5, INCOMING, "nul\x00 no meio\n com quebra"),
    ]
    lines = compile_transcript(messages).splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == [
        "[imagem]",
        "[áudio]",
        "[anexo sem texto]",
        "Quero saber os planos",
        "[mensagem apagada]",
        "nul no meio com quebra",
    ]
    assert not has_forbidden_characters("\n".join(lines))


def test_message_text_reads_submitted_form_values():
    m = msg(0, INCOMING, None, attributes={"submitted_values": [{"title": "Plano anual"}, {"value": "manhã"}]})
    assert message_text(m) == "Plano anual, manhã"


def test_transcript_uses_local_time_across_midnight():
    late = SourceMessage(dt.datetime(2025, 11, 11, 2, 50), INCOMING, False, "Contact", "boa noite")
    assert compile_transcript([late], "America/Sao_Paulo") == "[10/11 23:50] Contato: boa noite"
    assert compile_transcript([late], "UTC") == "[11/11 02:50] Contato: boa noite"


@pytest.mark.parametrize("timezone, start_utc", [
    ("America/Sao_Paulo", dt.datetime(2018, 11, 4, 2, 58)),  # the last DST start in Brazil
    ("America/Sao_Paulo", dt.datetime(2019, 2, 17, 1, 58)),  # ... and its end
    ("America/New_York", dt.datetime(2025, 3, 9, 6, 58)),
    ("Australia/Lord_Howe", dt.datetime(2025, 4, 5, 14, 58)),  # a 30-minute DST shift
    ("America/Sao_Paulo", dt.datetime(1900, 1, 1, 11, 58)),  # local mean time, -03:06:28
])
def test_memoised_stamps_match_zoneinfo_around_offset_changes(timezone, start_utc):
    tz = ZoneInfo(timezone)
    for seconds in range(0, 4 * 3600, 7):
        ts = start_utc + dt.timedelta(seconds=seconds, microseconds=seconds * 997 % 1_000_000)
        t = ts.replace(tzinfo=dt.timezone.utc).astimezone(tz)
        expected = f"[{t.day:02d}/{t.month:02d} {t.hour:02d}:{t.minute:02d}] Contato: oi"
        for value in (ts, ts.replace(tzinfo=dt.timezone.utc).astimezone(tz), ts.isoformat(sep=" ")):
            assert compile_transcript([SourceMessage(value, INCOMING, False, "Contact", "oi")], timezone) == expected


def test_content_hash_changes_with_transcript_and_name():
    base = content_hash("linha", "Ana")
    assert base == content_hash("linha", "Ana")
    assert base != content_hash("linha ", "Ana")
    assert base != content_hash("linha", "Ana Paula")
    assert len(base) == 64

"""Labelled evaluation sets: JSON Lines, one conversation per line, validated whole before use.

A malformed file raises ``EvalSetError`` with one line naming the file line and the field; the
conversations reach the analysers through the pipeline's own transcript compiler.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.errors import AllpfitError
from allpfit_etl.extract.hashing import content_hash
from allpfit_etl.extract.transcript import (
    ATTACHMENT_PLACEHOLDERS,
    INCOMING,
    OUTGOING,
    SourceMessage,
    compile_transcript,
)

ROLES = {"contact": (INCOMING, "Contact"), "agent": (OUTGOING, "User"), "bot": (OUTGOING, "AgentBot")}
PLACEHOLDER_ATTACHMENTS = {text: kind for kind, text in ATTACHMENT_PLACEHOLDERS.items()}
BUNDLED_SETS = ("heldout", "dev")


class EvalSetError(AllpfitError):
    """The evaluation file is malformed: one line naming where and what."""


@dataclass(frozen=True)
class Labels:
    is_lead: bool
    visita_agendada: bool
    probabilidade_conversao: int
    nome: str | None


@dataclass(frozen=True)
class LabelledConversation:
    id: str
    contact_name: str | None
    messages: tuple[SourceMessage, ...]
    labels: Labels
    note: str | None


@dataclass(frozen=True)
class EvalSet:
    name: str
    fingerprint: str  # sha256 of the file's bytes: the same set, the same fingerprint
    conversations: tuple[LabelledConversation, ...]


def bundled_path(name: str) -> Path:
    """``heldout`` or ``dev``: the sets shipped in the package (``evaluation/data``)."""
    return Path(str(resources.files("allpfit_etl.evaluation") / "data" / f"{name}.jsonl"))


def load_eval_set(path: Path | str) -> EvalSet:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EvalSetError(f"cannot read evaluation set {str(path)!r}: {exc.strerror or exc}") from None
    return parse_eval_set(data, name=path.name)


def parse_eval_set(data: bytes, name: str = "<set>") -> EvalSet:
    """Every line validated before any is used; ids must be unique; at least one conversation."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EvalSetError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    conversations, seen = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        conversation = parse_line(line, f"{name} line {number}")
        if conversation.id in seen:
            raise EvalSetError(f"{name} line {number}: field id: {conversation.id!r} appears twice")
        seen.add(conversation.id)
        conversations.append(conversation)
    if not conversations:
        raise EvalSetError(f"{name}: no conversations")
    return EvalSet(name, hashlib.sha256(data).hexdigest(), tuple(conversations))


def parse_line(line: str, where: str) -> LabelledConversation:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise EvalSetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise EvalSetError(f"{where}: a conversation must be a JSON object")

    def bad(field: str, problem: str) -> EvalSetError:
        return EvalSetError(f"{where}: field {field}: {problem}")

    conversation_id = record.get("id")
    if isinstance(conversation_id, int) and not isinstance(conversation_id, bool):
        conversation_id = str(conversation_id)
    if not isinstance(conversation_id, str) or not conversation_id.strip():
        raise bad("id", "missing or not a non-empty string")
    contact_name = _optional_text(record, "contact_name", bad)
    note = _optional_text(record, "note", bad)
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "missing or not a non-empty list")
    parsed = tuple(_message(m, f"messages[{i}]", bad) for i, m in enumerate(messages))
    labels = record.get("labels")
    if not isinstance(labels, dict):
        raise bad("labels", "missing or not an object")
    return LabelledConversation(conversation_id, contact_name, parsed, _labels(labels, bad), note)


def _optional_text(record: dict, field: str, bad) -> str | None:
    value = record.get(field)
    if value is not None and not isinstance(value, str):
        raise bad(field, "must be a string or null")
    return value


def _message(message, field: str, bad) -> SourceMessage:
    if not isinstance(message, dict):
        raise bad(field, "must be an object with role, text and at")
    role = message.get("role")
    if role not in ROLES:
        raise bad(f"{field}.role", f"must be one of contact, agent, bot, got {role!r}")
    text = message.get("text")
    if not isinstance(text, str):
        raise bad(f"{field}.text", "missing or not a string")
    at = message.get("at")
    if not isinstance(at, str):
        raise bad(f"{field}.at", "missing or not an ISO 8601 time string")
    try:
        when = dt.datetime.fromisoformat(at)
    except ValueError:
        raise bad(f"{field}.at", f"not an ISO 8601 time: {at!r}") from None
    if when.tzinfo is not None:  # Chatwoot's columns hold naive UTC
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    message_type, sender_type = ROLES[role]
    attachment = PLACEHOLDER_ATTACHMENTS.get(text.strip())
    if attachment is not None:  # as Chatwoot stores a voice note or a photo: no text, an attachment
        return SourceMessage(when, message_type, False, sender_type, None, None, attachment)
    return SourceMessage(when, message_type, False, sender_type, text)


def _labels(labels: dict, bad) -> Labels:
    values = {}
    for field in ("is_lead", "visita_agendada"):
        if not isinstance(labels.get(field), bool):
            raise bad(f"labels.{field}", "missing or not true/false")
        values[field] = labels[field]
    probability = labels.get("probabilidade_conversao")
    if isinstance(probability, bool) or not isinstance(probability, int) or not 0 <= probability <= 5:
        raise bad("labels.probabilidade_conversao", f"must be an integer from 0 to 5, got {probability!r}")
    if "nome" not in labels:
        raise bad("labels.nome", "missing (use null when the contact has no name)")
    nome = labels["nome"]
    if nome is not None and not isinstance(nome, str):
        raise bad("labels.nome", "must be a string or null")
    return Labels(values["is_lead"], values["visita_agendada"], probability, nome.strip() or None if nome else None)


def analyzer_inputs(eval_set: EvalSet, timezone: str) -> list[ConversationInput]:
    """The set as the analysers see production conversations: compiled transcripts, one
    synthetic conversation id per line (1, 2, …), tenant 0 (no tenant's)."""
    inputs = []
    for number, conversation in enumerate(eval_set.conversations, start=1):
        transcript = compile_transcript(sorted(conversation.messages, key=lambda m: m.created_at), timezone)
        inputs.append(ConversationInput(0, number, content_hash(transcript, conversation.contact_name), transcript,
                                        conversation.contact_name))
    return inputs

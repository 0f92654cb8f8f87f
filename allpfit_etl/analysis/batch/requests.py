"""Batch request lines: the same prompt and Structured Outputs schema as real time, one line per
conversation, a ``custom_id`` that says exactly which answer it is, files within the API limits.
Pure functions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Sequence
from urllib.parse import quote, unquote

from allpfit_etl.analysis import openai_analyzer
from allpfit_etl.analysis.structured_output import JSON_SCHEMA, request_fields
from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.errors import ConfigError

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
MAX_REQUESTS_PER_FILE = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
CUSTOM_ID_PREFIX = "allpfit"


@dataclass(frozen=True)
class RequestKey:
    """What a ``custom_id`` encodes: the exactly-once key of the answer."""

    tenant_id: int
    conversation_id: int
    content_hash: str
    model: str
    prompt_version: str

    def custom_id(self) -> str:
        parts = (str(self.tenant_id), str(self.conversation_id), self.content_hash, self.model, self.prompt_version)
        return ":".join([CUSTOM_ID_PREFIX, *(quote(p, safe="") for p in parts)])


def parse_custom_id(custom_id: str) -> RequestKey:
    parts = custom_id.split(":")
    if len(parts) != 6 or parts[0] != CUSTOM_ID_PREFIX:
        raise ValueError(f"not an allpfit custom_id: {custom_id!r}")
    tenant, conversation, content_hash, model, prompt_version = (unquote(p) for p in parts[1:])
    return RequestKey(int(tenant), int(conversation), content_hash, model, prompt_version)


@dataclass(frozen=True)
class RequestLine:
    key: RequestKey
    data: bytes  # one JSONL line, newline included

    @property
    def custom_id(self) -> str:
        return self.key.custom_id()


def request_body(conversation: ConversationInput, model: str, max_prompt_tokens: int,
                 prompt_version: str = openai_analyzer.PROMPT_VERSION) -> dict:
    """Exactly what the real-time analyser sends for this conversation in ``json_schema`` mode
    (the Batch API is OpenAI's, which takes Structured Outputs)."""
    messages = openai_analyzer.build_messages(conversation, max_prompt_tokens, prompt_version)
    return {"model": model, **request_fields(JSON_SCHEMA, messages)}


def build_request_line(conversation: ConversationInput, model: str, prompt_version: str, max_prompt_tokens: int) -> RequestLine:
    key = RequestKey(conversation.tenant_id, conversation.conversation_id, conversation.content_hash, model, prompt_version)
    line = {"custom_id": key.custom_id(), "method": "POST", "url": ENDPOINT,
            "body": request_body(conversation, model, max_prompt_tokens, prompt_version)}
    return RequestLine(key, json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")


def split_into_files(
    lines: Iterable[RequestLine], max_requests: int = MAX_REQUESTS_PER_FILE, max_bytes: int = MAX_FILE_BYTES
) -> list[list[RequestLine]]:
    """Groups of lines, each one model, at most ``max_requests`` lines and ``max_bytes`` bytes;
    a conversation appears once (the API rejects a repeated ``custom_id``)."""
    by_model: dict[str, list[RequestLine]] = {}
    seen: set[str] = set()
    for line in lines:
        if line.custom_id in seen:
            continue
        seen.add(line.custom_id)
        by_model.setdefault(line.key.model, []).append(line)
    files: list[list[RequestLine]] = []
    for model in sorted(by_model):
        current: list[RequestLine] = []
        size = 0
        for line in by_model[model]:
            if len(line.data) > max_bytes:
                raise ConfigError(f"conversation {line.key.conversation_id}: one request is larger than the batch file limit")
            if current and (len(current) >= max_requests or size + len(line.data) > max_bytes):
                files.append(current)
                current, size = [], 0
            current.append(line)
            size += len(line.data)
        if current:
            files.append(current)
    return files


def file_content(lines: Sequence[RequestLine]) -> bytes:
    return b"".join(line.data for line in lines)

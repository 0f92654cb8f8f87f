"""How the answer's JSON schema is asked for, and how a completion becomes a ``LeadAnalysis``.
Pure functions, shared by real time and the Batch API.

Servers differ in what they accept:

- ``json_schema``: OpenAI's Structured Outputs (also vLLM). The default.
- ``json_object``: ``{"type": "json_object", "schema": …}``, as llama-cpp-python's server and
  Ollama accept it; the schema is also stated in the prompt, for servers that ignore it.
- ``tools``: one function whose parameters are the schema, and the model told to call it.
- ``auto``: ``json_schema``, falling back in that order when the server rejects the format.

Whatever the mode, the answer is validated by the same pydantic model, ``LeadAnswer``."""

from __future__ import annotations

import functools
import json

import pydantic

from allpfit_etl.analysis.interface import LeadAnalysis
from allpfit_etl.text import sanitize_text

JSON_SCHEMA, JSON_OBJECT, TOOLS, AUTO = "json_schema", "json_object", "tools", "auto"
MODES = (JSON_SCHEMA, JSON_OBJECT, TOOLS, AUTO)
FALLBACK_ORDER = (JSON_SCHEMA, JSON_OBJECT, TOOLS)  # what ``auto`` tries, in this order
TOOL_NAME = "registrar_analise"


class LeadAnswer(pydantic.BaseModel):
    """The answer schema, sent as a strict JSON schema (Structured Outputs)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    is_lead: bool
    visita_agendada: bool
    probabilidade_conversao: int = pydantic.Field(ge=0, le=5)
    nome_mapeado_bot: str | None
    analise_ia: str


class InvalidAnswer(Exception):
    """The completion holds no valid answer (truncated, refused, malformed, off-schema)."""


def strict_response_format(model: type[pydantic.BaseModel]) -> dict:
    """The ``response_format`` of Structured Outputs for ``model``. The strict schema comes from
    ``openai.pydantic_function_tool`` — the public helper applying the same conversion as
    ``chat.completions.parse`` — and a test pins it (``test_openai_analyzer``)."""
    import openai  # imported by the processes that send requests only (see ``response_format``)

    function = openai.pydantic_function_tool(model)["function"]
    return {"type": "json_schema",
            "json_schema": {"name": function["name"], "schema": function["parameters"], "strict": True}}


@functools.cache
def response_format() -> dict:
    """``LeadAnswer``'s strict ``response_format``, built on first use rather than at import.
    Importing the openai SDK costs a third of a process's definitions load (0.34–0.52 of
    1.10–1.49 CPU-s, bench/bench_definitions_load.py), and most processes that load them — the
    CLI's commands, the code server, sensors, run workers of regex tenants and provisional
    answers — never send a request. So the SDK is imported only where a client is made or its
    errors are caught (and preloaded by the forkserver of a run's step processes, definitions.py)."""
    return strict_response_format(LeadAnswer)


def schema() -> dict:
    """The answer's JSON schema, as the other modes send it."""
    return response_format()["json_schema"]["schema"]


@functools.cache
def schema_in_prompt() -> str:
    """The schema stated in the system prompt, for servers that ignore ``response_format``'s."""
    return ("\n\nResponda somente com um objeto JSON, sem texto antes ou depois, que siga este JSON Schema:\n"
            + json.dumps(schema(), ensure_ascii=False))


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        from allpfit_etl.errors import ConfigError

        raise ConfigError(f"structured_output must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def first_mode(mode: str) -> str:
    """The mode a request is sent in first (``auto`` starts with ``json_schema``)."""
    return JSON_SCHEMA if mode == AUTO else mode


def next_mode(mode: str) -> str | None:
    """``auto``'s next mode after ``mode`` was rejected, or None when none is left."""
    index = FALLBACK_ORDER.index(mode)
    return FALLBACK_ORDER[index + 1] if index + 1 < len(FALLBACK_ORDER) else None


def request_fields(mode: str, messages: list[dict]) -> dict:
    """The body fields besides ``model``: the messages and how the schema is asked for."""
    if mode == JSON_SCHEMA:
        return {"messages": messages, "response_format": response_format()}
    if mode == JSON_OBJECT:
        system, *rest = messages
        stated = [{**system, "content": system["content"] + schema_in_prompt()}, *rest]
        return {"messages": stated, "response_format": {"type": "json_object", "schema": schema()}}
    if mode == TOOLS:
        tool = {"type": "function", "function": {
            "name": TOOL_NAME, "description": "Registra a análise da conversa.", "parameters": schema()}}
        return {"messages": messages, "tools": [tool],
                "tool_choice": {"type": "function", "function": {"name": TOOL_NAME}}}
    raise ValueError(f"not a request mode: {mode!r}")


def completion_usage(completion: dict) -> tuple[int, int, int, int] | None:
    """(prompt, cached, completion, total) tokens a completion reports, or None."""
    reported = completion.get("usage") if isinstance(completion, dict) else None
    if not reported:
        return None
    prompt, completion_tokens = int(reported.get("prompt_tokens") or 0), int(reported.get("completion_tokens") or 0)
    cached = int((reported.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return prompt, cached, completion_tokens, int(reported.get("total_tokens") or prompt + completion_tokens)


def answer_text(completion: dict) -> str:
    """The answer's JSON text, in whichever place the mode puts it (content or a tool call)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if choices else None
    message = (choice or {}).get("message") or {}
    if choice is None or message.get("refusal") or choice.get("finish_reason") == "length":
        raise InvalidAnswer()
    calls = message.get("tool_calls") or []
    if calls:
        text = ((calls[0] or {}).get("function") or {}).get("arguments")
    else:
        text = message.get("content")
    if not text:
        raise InvalidAnswer()
    return text


def parse_answer(text: str) -> LeadAnalysis:
    """The JSON answer, validated by ``LeadAnswer``, cleaned for storage."""
    try:
        answer = LeadAnswer.model_validate_json(_strip_fences(text))
    except pydantic.ValidationError:
        raise InvalidAnswer() from None
    name = sanitize_text(answer.nome_mapeado_bot)
    return LeadAnalysis(
        is_lead=answer.is_lead,
        visita_agendada=answer.visita_agendada,
        probabilidade_conversao=answer.probabilidade_conversao,
        nome_mapeado_bot=name.strip() or None if name else None,
        analise_ia=(sanitize_text(answer.analise_ia) or "").strip()[:500],
    )


def parse_completion(completion: dict) -> LeadAnalysis:
    """A chat completion's answer, any mode; ``InvalidAnswer`` when there is none."""
    return parse_answer(answer_text(completion))


def _strip_fences(text: str) -> str:
    """A model told in the prompt to answer JSON sometimes wraps it in a Markdown code fence."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        stripped = stripped[3:-3]
        stripped = stripped[4:] if stripped.lower().startswith("json") else stripped
    return stripped


def is_format_rejection(status: int, message: str, param: str | None, mode: str) -> bool:
    """Whether an error answer rejects the way the schema was asked for (not the account, not
    this conversation): a 400/422 naming the format, or a server that says so with a 500
    (llama-cpp-python: ``response_format.type: Input should be 'text' or 'json_object'``)."""
    if status not in (400, 422, 500, 501):
        return False
    if param in ("response_format", "tools", "tool_choice"):
        return True
    text = (message or "").lower()
    words = ("tool",) if mode == TOOLS else ("response_format", "json_schema", "json_object", "response format")
    return any(word in text for word in words)

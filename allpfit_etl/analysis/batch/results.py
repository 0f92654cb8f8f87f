"""Reading a batch's output and error files. Lines are matched by ``custom_id``, never by
position (the API gives no order). Pure functions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from allpfit_etl.analysis.batch.requests import RequestKey, parse_custom_id
from allpfit_etl.analysis.interface import LeadAnalysis
from allpfit_etl.analysis.pricing import ModelPrice, cost_usd
from allpfit_etl.analysis.structured_output import InvalidAnswer, completion_usage, parse_completion


@dataclass(frozen=True)
class LineOutcome:
    custom_id: str
    key: RequestKey | None
    analysis: LeadAnalysis | None = None  # a valid answer
    error_kind: str | None = None  # batch_expired | http_500 | invalid_answer | ...
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    @property
    def billed(self) -> bool:
        return bool(self.prompt_tokens or self.completion_tokens)

    def cost_usd(self, price: ModelPrice) -> float:
        return cost_usd(price, self.prompt_tokens, self.cached_tokens, self.completion_tokens)


def parse_result_line(raw: str) -> LineOutcome:
    """One line of an output or error file."""
    row = json.loads(raw)
    custom_id = row.get("custom_id") or ""
    try:
        key = parse_custom_id(custom_id)
    except ValueError:
        key = None
    if row.get("error"):
        return LineOutcome(custom_id, key, error_kind=str(row["error"].get("code") or "error"))
    response = row.get("response") or {}
    body = response.get("body") or {}
    status = int(response.get("status_code") or 0)
    if status != 200:
        code = ((body.get("error") or {}).get("code")) if isinstance(body, dict) else None
        return LineOutcome(custom_id, key, error_kind=str(code or f"http_{status}"))
    prompt, cached, completion, _total = completion_usage(body) or (0, 0, 0, 0)
    tokens = dict(prompt_tokens=prompt, cached_tokens=cached, completion_tokens=completion)
    try:
        analysis = parse_completion(body)
    except InvalidAnswer:
        return LineOutcome(custom_id, key, error_kind="invalid_answer", **tokens)
    return LineOutcome(custom_id, key, analysis=analysis, **tokens)


def parse_result_file(text: str) -> dict[str, LineOutcome]:
    """``{custom_id: outcome}``; a line that cannot be read at all is skipped (its request
    stays unanswered and is retried)."""
    outcomes = {}
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            outcome = parse_result_line(raw)
        except (ValueError, TypeError, AttributeError):
            continue
        outcomes[outcome.custom_id] = outcome
    return outcomes

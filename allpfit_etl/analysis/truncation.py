"""Fitting long transcripts into a token budget without any network access. Pure functions."""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 3.5  # PT-BR averages ~4 characters per token: 3.5 over-estimates, on purpose


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def truncate_transcript(transcript: str, max_tokens: int, head_share: float = 0.2) -> str:
    """Keep the opening lines and the most recent ones; what is cut becomes one marker line.

    Lines are never split, except a single line that alone exceeds the budget.
    """
    if estimate_tokens(transcript) <= max_tokens:
        return transcript
    lines = transcript.split("\n")
    head_budget = int(max_tokens * head_share)
    head, used = [], 0
    for line in lines:
        cost = estimate_tokens(line) + 1
        if used + cost > head_budget:
            break
        head.append(line)
        used += cost
    tail, tail_budget = [], max_tokens - used - 12  # room for the marker line
    for line in reversed(lines[len(head):]):
        cost = estimate_tokens(line) + 1
        if cost > tail_budget:
            break
        tail.append(line)
        tail_budget -= cost
    tail.reverse()
    omitted = len(lines) - len(head) - len(tail)
    if not head and not tail:  # one enormous line
        keep = int(max_tokens * CHARS_PER_TOKEN) - 40
        return lines[-1][-keep:] if keep > 0 else ""
    marker = [f"[... {omitted} mensagens omitidas ...]"] if omitted else []
    return "\n".join(head + marker + tail)

"""OpenAI's prompt caching, as the fake server reports it.

OpenAI caches the prefix of a prompt of 1,024 tokens or more; a later request sharing that
prefix, within a few minutes, reports the shared part in ``usage.prompt_tokens_details.cached_tokens``:
1,024 tokens, then steps of 128. Here a prompt is its messages' roles and texts in order,
four characters to the token (the fake's token estimate); a prefix is remembered by the hash of
its text at each 128-token boundary from 1,024 on, for ``ttl_s`` seconds since it was last seen.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Callable

MIN_PREFIX_TOKENS = 1024
STEP_TOKENS = 128
CHARS_PER_TOKEN = 4
DEFAULT_TTL_S = 300.0  # OpenAI: "usually 5 to 10 minutes of inactivity"


def prompt_text(messages: list[dict]) -> str:
    """The prompt as one string, messages in order; the role marks where each one starts."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        parts.append(f"<|{message.get('role', '')}|>{content if isinstance(content, str) else ''}")
    return "".join(parts)


def prefix_hashes(text: str) -> list[tuple[int, str]]:
    """(tokens, hash of the text up to there) at every cacheable boundary: 1,024, 1,152, …"""
    out, digest, done = [], hashlib.sha256(), 0
    tokens = MIN_PREFIX_TOKENS
    while tokens * CHARS_PER_TOKEN <= len(text):
        end = tokens * CHARS_PER_TOKEN
        digest.update(text[done:end].encode())
        done = end
        out.append((tokens, digest.copy().hexdigest()))
        tokens += STEP_TOKENS
    return out


class PromptCache:
    """``cached_tokens(messages, prompt_tokens)``: what this request reads from the cache; it
    also writes the request's own prefixes. Thread-safe."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s, self.clock = ttl_s, clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def cached_tokens(self, messages: list[dict], prompt_tokens: int) -> int:
        boundaries = prefix_hashes(prompt_text(messages))
        now = self.clock()
        with self._lock:
            if len(self._seen) > 200_000:
                self._forget_expired(now)
            cached = 0
            for tokens, key in boundaries:
                seen = self._seen.get(key)
                if seen is None or now - seen > self.ttl_s:
                    break
                cached = tokens
            for _, key in boundaries:
                self._seen[key] = now
        # The last tokens of a prompt are never read from the cache: OpenAI bills them as new.
        while cached and cached >= prompt_tokens:
            cached = cached - STEP_TOKENS if cached - STEP_TOKENS >= MIN_PREFIX_TOKENS else 0
        return cached

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def _forget_expired(self, now: float) -> None:
        self._seen = {key: seen for key, seen in self._seen.items() if now - seen <= self.ttl_s}

"""Splitting pending conversations into the chunks that fan out as dynamic outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

# Without a tenant's chunk_size. An OpenAI chunk is one step holding a share of the account's
# limit; each chunk ends in a tail (its last answers) that the CLI's one-step-at-a-time executor
# cannot overlap, so a run needs few chunks: 10,000 conversations are ~3 minutes at 3,000 RPM,
# 20 at tier 1's 500 RPM, and a few MB of transcripts. Regex chunks only bound memory and let
# the daemon's executor use every core.
DEFAULT_OPENAI_CHUNK = 10_000
DEFAULT_REGEX_CHUNK = 20_000


def default_chunk_size(use_openai: bool) -> int:
    return DEFAULT_OPENAI_CHUNK if use_openai else DEFAULT_REGEX_CHUNK


@dataclass(frozen=True)
class ChunkSpec:
    """What one mapped ``analyze_chunk`` step works on: ids only, the data stays in the database."""

    tenant_id: int
    tenant_slug: str
    index: int
    conversation_ids: tuple[int, ...]

    @property
    def mapping_key(self) -> str:
        return f"{self.tenant_slug}_{self.index:05d}"


def split_into_chunks(
    tenant_id: int, tenant_slug: str, conversation_ids: Sequence[int], chunk_size: int, max_chunks: int | None = None
) -> list[ChunkSpec]:
    """Consecutive chunks of at most ``chunk_size`` ids.

    ``max_chunks`` bounds the number of steps a single run can create (each step has a
    fixed cost in Dagster); past it, chunks grow evenly instead.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    ids = list(conversation_ids)
    if not ids:
        return []
    size = chunk_size
    if max_chunks and -(-len(ids) // size) > max_chunks:
        size = -(-len(ids) // max_chunks)
    return [
        ChunkSpec(tenant_id, tenant_slug, index, tuple(ids[start : start + size]))
        for index, start in enumerate(range(0, len(ids), size))
    ]

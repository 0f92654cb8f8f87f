"""Splitting pending conversations into the chunks that fan out as dynamic outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


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

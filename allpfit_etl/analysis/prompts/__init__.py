"""Versioned prompts. Changing a prompt's text means a new file and a new version, so every
stored answer records exactly which prompt produced it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from allpfit_etl.errors import ConfigError
from allpfit_etl.identities import PROMPT_VERSION, PROMPT_VERSIONS

# lead-v2: rubric and worked examples, all static, so the prefix OpenAI caches is over 1,024 tokens.
_PROMPT_FILES = {"lead-v1": "lead_analysis_v1.md", "lead-v2": "lead_analysis_v2.md"}
assert tuple(_PROMPT_FILES) == PROMPT_VERSIONS, "identities.PROMPT_VERSIONS names every prompt file"


def require_prompt_version(version: str) -> str:
    if version not in _PROMPT_FILES:
        raise ConfigError(f"unknown prompt version {version!r}; known: {', '.join(PROMPT_VERSIONS)}")
    return version


@cache
def system_prompt(version: str = PROMPT_VERSION) -> str:
    return (Path(__file__).parent / _PROMPT_FILES[require_prompt_version(version)]).read_text(encoding="utf-8").strip()

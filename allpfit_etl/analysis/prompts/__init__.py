"""Versioned prompts. Changing a prompt's text means a new file and a new version, so every
stored answer records exactly which prompt produced it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from allpfit_etl.identities import PROMPT_VERSION

_PROMPT_FILES = {"lead-v1": "lead_analysis_v1.md"}


@cache
def system_prompt(version: str = PROMPT_VERSION) -> str:
    return (Path(__file__).parent / _PROMPT_FILES[version]).read_text(encoding="utf-8").strip()

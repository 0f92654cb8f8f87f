"""Defaults that follow from the rate limit instead of hand-set numbers: chunk sizes, and the
old hand-set defaults removed from tenants that were stored with them."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.chunks import DEFAULT_OPENAI_CHUNK, DEFAULT_REGEX_CHUNK, default_chunk_size, split_into_chunks
from allpfit_etl.db import get_engine
from allpfit_etl.schema import apply_migrations
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant, get_tenant


def test_a_tenant_day_is_one_chunk_and_regex_chunks_stay_bounded():
    assert default_chunk_size(use_openai=True) == DEFAULT_OPENAI_CHUNK >= 6000
    assert len(split_into_chunks(1, "gym", range(6000), default_chunk_size(True))) == 1
    regex = split_into_chunks(1, "gym", range(100_000), default_chunk_size(False))
    assert len(regex) == 100_000 // DEFAULT_REGEX_CHUNK and max(len(c.conversation_ids) for c in regex) <= DEFAULT_REGEX_CHUNK


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request, make_pg_database, tmp_path):
    url = make_pg_database("analytics") if request.param == "postgresql" else f"sqlite:///{tmp_path / 'analytics.db'}"
    engine = get_engine(url)
    apply_migrations(engine)
    return engine


def test_migration_removes_the_old_hand_set_defaults_and_keeps_chosen_values(engine):
    add_tenant(engine, "old", "Old", 1, TenantFeatures(use_openai=True, chunk_size=50, max_concurrency=20))
    add_tenant(engine, "chosen", "Chosen", 2, TenantFeatures(chunk_size=25, max_concurrency=8))
    with engine.begin() as conn:  # as if 002 had not run yet
        conn.execute(sa.text("DELETE FROM schema_migrations WHERE version = '002_openai_rate_limit'"))
    assert apply_migrations(engine) == ["002_openai_rate_limit"]
    old, chosen = get_tenant(engine, "old").features, get_tenant(engine, "chosen").features
    assert (old.use_openai, old.chunk_size, old.max_concurrency) == (True, None, None)
    assert (chosen.chunk_size, chosen.max_concurrency) == (25, 8)
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT features FROM tenant_configs WHERE slug = 'old'")).scalar_one()
    assert "chunk_size" not in (raw if isinstance(raw, dict) else json.loads(raw))


def test_limits_set_in_the_environment_or_the_resource_win_over_learning(monkeypatch):
    from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
    from allpfit_etl.analysis.pricing import RateLimits
    from allpfit_etl.errors import ConfigError

    monkeypatch.delenv("OPENAI_RPM", raising=False)
    monkeypatch.delenv("OPENAI_TPM", raising=False)
    assert LeadAnalysisOpenAI().configured_limits("gpt-4o-mini") is None  # learned from the server
    monkeypatch.setenv("OPENAI_RPM", "500")
    assert LeadAnalysisOpenAI().configured_limits("gpt-4o-mini") == RateLimits(500, 0)
    assert LeadAnalysisOpenAI(rpm=300, tpm=90_000).configured_limits("gpt-4o-mini") == RateLimits(300, 90_000)
    monkeypatch.setenv("OPENAI_RPM", "lots")
    with pytest.raises(ConfigError, match="^OPENAI_RPM must be a whole number of RPM, got 'lots'$"):
        LeadAnalysisOpenAI().configured_limits("gpt-4o-mini")


def test_the_cli_passes_rpm_and_tpm_as_the_environment_does(monkeypatch):
    import os

    from allpfit_etl.cli.main import build_parser, set_rate_limits

    monkeypatch.delenv("OPENAI_RPM", raising=False)
    monkeypatch.delenv("OPENAI_TPM", raising=False)
    set_rate_limits(build_parser().parse_args(["run", "--rpm", "450", "--tpm", "150000"]))
    assert (os.environ["OPENAI_RPM"], os.environ["OPENAI_TPM"]) == ("450", "150000")

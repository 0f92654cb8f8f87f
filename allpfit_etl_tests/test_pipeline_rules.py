"""Pure rules around the pipeline: pending filter, chunking, partition keys, tenant features."""

from __future__ import annotations

import datetime as dt

import pytest

from allpfit_etl.analysis.chunks import split_into_chunks
from allpfit_etl.analysis.interface import AnalyzerIdentity, LeadAnalysis
from allpfit_etl.errors import ConfigError
from allpfit_etl.partitions import days_by_tenant, parse_partition_key, partition_key
from allpfit_etl.pending.rules import (
    ANALYZER_CHANGED, CONTENT_CHANGED, NEW, PROVISIONAL, SETTLED, PendingDecision, StoredAnalysis, is_settled,
    pending_decision, pending_reason,
)
from allpfit_etl.tenants.registry import coerce_feature_value, parse_features, validate_slug

REGEX = AnalyzerIdentity("regex", "", "regex-v1")
OPENAI = AnalyzerIdentity("openai", "gpt-4o-mini", "lead-v1")


def stored(identity: AnalyzerIdentity, content_hash="h1") -> StoredAnalysis:
    return StoredAnalysis(content_hash, identity.analyzer, identity.model, identity.prompt_version)


@pytest.mark.parametrize(
    "current, existing, force, expected",
    [
        (REGEX, None, False, NEW),
        (REGEX, stored(REGEX), False, None),
        (REGEX, stored(REGEX, "other"), False, CONTENT_CHANGED),
        (OPENAI, stored(REGEX), False, ANALYZER_CHANGED),
        # a new prompt version re-pays no history (`allpfit-etl reanalyze` does, explicitly)
        (OPENAI, stored(AnalyzerIdentity("openai", "gpt-4o-mini", "lead-v0")), False, None),
        (OPENAI, stored(AnalyzerIdentity("openai", "gpt-4o", "lead-v1")), False, ANALYZER_CHANGED),
        (REGEX, stored(OPENAI), False, None),
        (REGEX, stored(OPENAI), True, ANALYZER_CHANGED),
        (REGEX, stored(OPENAI, "other"), False, CONTENT_CHANGED),
    ],
)
def test_pending_reason(current, existing, force, expected):
    assert pending_reason("h1", current, existing, reanalyze_with_regex=force) == expected


def test_an_answer_stored_for_the_new_prompt_is_loaded_and_a_new_model_still_reanalyses():
    old_prompt = stored(AnalyzerIdentity("openai", "gpt-4o-mini", "lead-v0"))
    assert pending_reason("h1", OPENAI, old_prompt, current_answer_stored=True) == ANALYZER_CHANGED
    assert pending_reason("h1", OPENAI, stored(OPENAI, "other")) == CONTENT_CHANGED  # changed content: the new prompt
    assert pending_reason("h1", OPENAI, stored(AnalyzerIdentity("openai", "gpt-4o", "lead-v0"))) == ANALYZER_CHANGED


NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(
    "last_activity, status, settle_minutes, expected",
    [
        (NOW - dt.timedelta(minutes=9, seconds=59), "open", 10, False),
        (NOW - dt.timedelta(minutes=10), "open", 10, True),
        (NOW - dt.timedelta(seconds=5), "resolved", 10, True),  # resolved: no wait
        (NOW - dt.timedelta(seconds=5), "pending", 0, True),
        (NOW, "snoozed", 0.5, False),
        (None, "open", 10, True),  # no activity recorded: nothing to wait for
    ],
)
def test_is_settled(last_activity, status, settle_minutes, expected):
    assert is_settled(last_activity, status, NOW, settle_minutes) is expected


def provisional(content_hash="h1") -> StoredAnalysis:
    return StoredAnalysis(content_hash, REGEX.analyzer, REGEX.model, REGEX.prompt_version, PROVISIONAL)


@pytest.mark.parametrize(
    "current, existing, settled, expected",
    [
        # an OpenAI tenant's conversation still going on: the free answer only, once per content
        (OPENAI, None, False, PendingDecision(NEW, provisional=True)),
        (OPENAI, provisional("old"), False, PendingDecision(CONTENT_CHANGED, provisional=True)),
        (OPENAI, provisional(), False, None),
        # ... settled: the paid answer replaces the provisional one
        (OPENAI, provisional(), True, PendingDecision(SETTLED, provisional=False)),
        (OPENAI, None, True, PendingDecision(NEW, provisional=False)),
        # a final answer whose conversation resumed: provisional again until it settles again
        (OPENAI, stored(OPENAI, "old"), False, PendingDecision(CONTENT_CHANGED, provisional=True)),
        (OPENAI, stored(OPENAI, "old"), True, PendingDecision(CONTENT_CHANGED, provisional=False)),
        (OPENAI, stored(OPENAI), False, None),
        # regex tenants are never delayed
        (REGEX, None, False, PendingDecision(NEW, provisional=False)),
        (REGEX, stored(REGEX, "old"), False, PendingDecision(CONTENT_CHANGED, provisional=False)),
    ],
)
def test_pending_decision_pays_only_for_settled_conversations(current, existing, settled, expected):
    assert pending_decision("h1", current, existing, settled=settled) == expected


def test_split_into_chunks_respects_size_and_cap():
    chunks = split_into_chunks(1, "allpfit", list(range(120)), 50)
    assert [len(c.conversation_ids) for c in chunks] == [50, 50, 20]
    assert [c.mapping_key for c in chunks] == ["allpfit_00000", "allpfit_00001", "allpfit_00002"]
    capped = split_into_chunks(1, "allpfit", list(range(1000)), 10, max_chunks=8)
    assert len(capped) == 8 and sum(len(c.conversation_ids) for c in capped) == 1000
    assert split_into_chunks(1, "allpfit", [], 50) == []


def test_partition_keys_round_trip():
    key = partition_key(dt.date(2025, 11, 10), "cdt_mossoro")
    assert str(key) == "2025-11-10|cdt_mossoro"
    assert parse_partition_key(key) == (dt.date(2025, 11, 10), "cdt_mossoro")
    grouped = days_by_tenant(["2025-11-11|allpfit", "2025-11-10|allpfit", "2025-11-10|investbem"])
    assert grouped == {"allpfit": [dt.date(2025, 11, 10), dt.date(2025, 11, 11)], "investbem": [dt.date(2025, 11, 10)]}


@pytest.mark.parametrize("bad", ["allpfit", "2025-13-01|allpfit", "a|b|c"])
def test_bad_partition_key_is_a_clear_error(bad):
    with pytest.raises(ConfigError, match="bad partition key"):
        parse_partition_key(bad)


@pytest.mark.parametrize("slug", ["AllpFit", "cdt-mossoro", "a|b", "x,y", "[t]", ""])
def test_slugs_that_would_break_partition_keys_are_rejected(slug):
    with pytest.raises(ConfigError, match="bad tenant slug"):
        validate_slug(slug)


def test_features_parse_validate_and_coerce():
    features = parse_features('{"use_openai": true, "chunk_size": 25, "monthly_budget_brl": 100}')
    assert features.use_openai and features.chunk_size == 25 and features.model == "gpt-4o-mini"
    assert parse_features({}).chunk_size is None and parse_features({}).max_concurrency is None
    with pytest.raises(ConfigError, match="unknown tenant feature"):
        parse_features({"colour": "blue"})
    with pytest.raises(ConfigError, match="chunk_size"):
        parse_features({"chunk_size": 0})
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_features("{nope")
    assert coerce_feature_value("use_openai", "TRUE") is True
    assert coerce_feature_value("monthly_budget_brl", "none") is None
    with pytest.raises(ConfigError):
        coerce_feature_value("chunk_size", "many")


def test_lead_analysis_rejects_out_of_range_probability():
    with pytest.raises(ValueError):
        LeadAnalysis(True, False, 6, None, "x")


def test_chunk_summaries_sum_into_the_materialization_metadata():
    from allpfit_etl.analysis.interface import Usage
    from allpfit_etl.analysis.summary import ChunkSummary

    a = ChunkSummary(conversations=2, analyzed=2, leads=1, started_at=5.0, models=("gpt-4o-mini",),
                     usage=Usage(calls=2, prompt_tokens=100, cached_tokens=10, completion_tokens=20, cost_usd=0.5, cost_brl=2.7))
    b = ChunkSummary(conversations=3, analyzed=1, failures=2, started_at=3.0, models=("gpt-4o-mini",),
                     usage=Usage(calls=4, prompt_tokens=50, completion_tokens=5, cost_usd=0.25, cost_brl=1.35, retries=3))
    meta = a.add(b).metadata(wall_seconds=2.0)
    assert (meta["conversations"], meta["analyzed"], meta["failures"], meta["leads"]) == (5, 3, 2, 1)
    assert (meta["openai.calls"], meta["openai.prompt_tokens"], meta["openai.cached_tokens"]) == (6, 150, 10)
    assert meta["openai.total_tokens"] == 175 and meta["retries"] == 3
    assert meta["cost_usd"] == pytest.approx(0.75) and meta["cost_brl"] == pytest.approx(4.05)
    assert meta["conversations_per_second"] == 1.5 and meta["model"] == "gpt-4o-mini"
    assert a.add(b).started_at == 3.0

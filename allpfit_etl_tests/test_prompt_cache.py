"""The fake server's prompt cache, and the ledger pricing cached tokens at the cached-input rate."""

from __future__ import annotations


import pytest
import sqlalchemy as sa

from allpfit_etl.analysis.answer_store import AnswerSink
from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.openai_analyzer import OpenAIAnalyzer, build_messages
from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
from allpfit_etl.analysis.pricing import price_for
from allpfit_etl.db import get_engine
from fake_openai.prompt_cache import PromptCache
from allpfit_etl.identities import openai_identity
from allpfit_etl.schema import apply_migrations


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def messages(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def test_a_long_prefix_seen_recently_is_cached_in_128_token_steps_and_forgotten_after_the_ttl():
    clock = Clock()
    cache = PromptCache(ttl_s=300, clock=clock)
    system = "x" * (4 * 1500)  # 1,500 tokens of four characters; "<|system|>" adds 10 characters
    assert cache.cached_tokens(messages(system, "primeira conversa"), 1600) == 0
    clock.now += 299
    cached = cache.cached_tokens(messages(system, "outra conversa"), 1600)
    # the shared text is "<|system|>" + 6,000 characters + "<|user|>": 6,018 characters, 1,504 tokens
    assert cached == 1024 + 3 * 128 == 1408
    assert cache.cached_tokens(messages(system, "outra conversa"), 1600) == 1408
    clock.now += 301
    assert cache.cached_tokens(messages(system, "outra conversa"), 1600) == 0  # expired: written again
    short = "y" * 4000  # 1,000 tokens: below the 1,024 OpenAI caches
    assert cache.cached_tokens(messages(short, "a"), 1010) == 0
    assert cache.cached_tokens(messages(short, "b"), 1010) == 0
    other = "z" + system[1:]  # a different first character: no shared prefix at all
    assert cache.cached_tokens(messages(other, "c"), 1600) == 0


def test_the_cache_never_covers_the_whole_prompt():
    cache = PromptCache(clock=Clock())
    text = "w" * (4 * 1100)
    cache.cached_tokens(messages(text, ""), 1030)
    assert cache.cached_tokens(messages(text, ""), 1030) == 1024  # the last six tokens are billed as new
    assert cache.cached_tokens(messages(text, ""), 1024) == 0  # 1,024 would be the whole prompt


def conversation(n: int) -> ConversationInput:
    text = f"[03/03 10:{n:02d}] Contato: oi, quanto custa o plano {n}?\n[03/03 10:{n:02d}] Atendente: R$ 99,90"
    return ConversationInput(1, n, f"hash{n}", text, f"Contato {n}")


@pytest.mark.parametrize("version", ["lead-v1", "lead-v2"])
def test_v2_requests_after_the_first_carry_cached_tokens_and_the_ledger_prices_them(make_pg_database, server, version):
    engine = get_engine(make_pg_database("cache"))
    apply_migrations(engine)
    identity = openai_identity("gpt-4o-mini", version)
    sink = AnswerSink(engine, 1, identity, "run-cache")
    resource = LeadAnalysisOpenAI(api_key="sk-test", base_url=server.base_url)
    analyzer = OpenAIAnalyzer(resource.client_factory(), tenant_id=1, model="gpt-4o-mini",
                              price=price_for("gpt-4o-mini"), max_concurrency=1, prompt_version=version,
                              on_answer=sink.submit_answer, on_call=sink.submit_call)
    conversations = [conversation(n) for n in range(1, 9)]
    outcome = analyzer.analyze_chunk(conversations)
    assert len(outcome.results) == 8
    assert build_messages(conversations[0], 6000, version)[0]["content"].startswith("Você é analista comercial")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT prompt_tokens, cached_tokens, completion_tokens, cost_usd FROM llm_usage"
                                    " ORDER BY created_at, id")).all()
        answers = conn.execute(sa.text("SELECT DISTINCT prompt_version FROM conversation_analyses")).scalars().all()
    assert answers == [version]
    stats = server.stats()
    assert sum(r.cached_tokens for r in rows) == stats["cached_tokens"] == outcome.usage.cached_tokens
    for r in rows:  # every ledger row at the cached-input rate for its cached part
        expected = ((r.prompt_tokens - r.cached_tokens) * 0.15 + r.cached_tokens * 0.075 + r.completion_tokens * 0.60) / 1e6
        assert r.cost_usd == pytest.approx(expected, rel=1e-9)
    if version == "lead-v1":  # ~430 tokens: too short for OpenAI's cache
        assert stats["cached_tokens"] == 0
        return
    first, later = rows[0], rows[1:]
    assert first.cached_tokens == 0 and first.prompt_tokens > 1024
    assert all(r.cached_tokens >= 1024 and r.cached_tokens % 128 == 0 for r in later)
    # the same prompt without the cache discount would cost more: the cache pays for itself after the first
    input_cost = lambda r: ((r.prompt_tokens - r.cached_tokens) * 0.15 + r.cached_tokens * 0.075) / 1e6  # noqa: E731
    assert all(input_cost(r) < r.prompt_tokens * 0.15 / 1e6 * 0.6 for r in later)
    assert all(input_cost(r) < input_cost(first) for r in later)


def test_the_budget_estimate_counts_the_tenants_prompt_version():
    from allpfit_etl.analysis.budget import estimate_chunk_cost_brl
    from allpfit_etl.analysis.prompts import system_prompt
    from allpfit_etl.analysis.truncation import estimate_tokens

    chunk = [conversation(1), conversation(2)]
    v1, v2 = (estimate_chunk_cost_brl(chunk, model="gpt-4o-mini", usd_brl=5.0, prompt_version=v)
              for v in ("lead-v1", "lead-v2"))
    extra_tokens = estimate_tokens(system_prompt("lead-v2")) - estimate_tokens(system_prompt("lead-v1"))
    assert extra_tokens > 1000
    assert v2 - v1 == pytest.approx(2 * extra_tokens * 0.15 / 1e6 * 5.0)  # no cache discount: an upper bound

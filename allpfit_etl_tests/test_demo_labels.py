"""The demo's labels: about half of each tenant's conversations carry one, every outcome occurs,
each tenant's own spellings map through its demo features, and the trials convert more often
than the rest (the outcome depends on the conversation)."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from allpfit_etl.db import get_engine
from allpfit_etl.demo.labels import UNMAPPED, demo_features
from allpfit_etl.demo.seed import DEMO_TENANTS, create_chatwoot_schema, seed_demo
from allpfit_etl.tenants.outcomes import attribute_value, outcome_of, split_titles
from allpfit_etl.tenants.registry import TenantFeatures


def test_demo_labels_are_partial_plausible_and_mapped(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'chatwoot.db'}")
    create_chatwoot_schema(engine)
    seed_demo(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT c.account_id, c.cached_label_list, c.custom_attributes,"
            " (SELECT group_concat(m.content, ' ') FROM messages m WHERE m.conversation_id = c.id) AS text"
            " FROM conversations c")).all()
    for tenant in DEMO_TENANTS:
        mapping = TenantFeatures(**demo_features(tenant.slug)).validated().outcome_mapping()
        mine = [r for r in rows if r.account_id == tenant.account_id]
        found = Counter(outcome_of(r.cached_label_list, attribute_value(r.custom_attributes, mapping.attribute), mapping)
                        for r in mine)
        labelled = len(mine) - found[None]
        assert 0.3 < labelled / len(mine) < 0.7, tenant.slug
        assert all(found[o] > 0 for o in ("converted", "visited", "lead", "not_lead")), (tenant.slug, found)
        titles = {t for r in mine for t in split_titles(r.cached_label_list)}
        assert titles - set(mapping.by_title) <= set(UNMAPPED), tenant.slug
        # conversations where an agent confirmed a trial convert more often than the others
        trial = [r for r in mine if r.text and "Agendado" in r.text]
        rate = lambda group: sum(  # noqa: E731
            outcome_of(r.cached_label_list, attribute_value(r.custom_attributes, mapping.attribute), mapping) == "converted"
            for r in group) / len(group)
        assert rate(trial) > rate([r for r in mine if r not in trial]), tenant.slug
    jp_sul = TenantFeatures(**demo_features("cdt_jp_sul")).outcome_mapping()
    assert any(attribute_value(r.custom_attributes, jp_sul.attribute) for r in rows)  # enrolments by attribute

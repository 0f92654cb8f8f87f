"""The demo's Chatwoot labels: what a sales team records on part of its conversations.

Each demo tenant names its labels its own way (case, accents, a custom attribute), as real teams
do, and maps them with the tenant features ``labels_*`` / ``outcome_attribute`` (``demo_features``).
About half of the conversations get a label; the outcome depends on the kind of conversation: a
scheduled trial converts far more often than a price question, a billing chat is a member.
Drawn from a random generator of its own, so the rest of the demo data is the same with or
without labels.
"""

from __future__ import annotations

import json
import random

from allpfit_etl.tenants.outcomes import CONVERTED, LEAD, NOT_LEAD, VISITED

# Per kind of conversation: (share labelled, weights of converted, visited, lead, not_lead among the labelled)
OUTCOME_ODDS = {
    "price_question": (0.55, (20, 15, 50, 15)),
    "trial_scheduled": (0.75, (40, 35, 20, 5)),
    "trial_asked": (0.60, (20, 25, 50, 5)),
    "schedule_hours": (0.40, (10, 10, 40, 40)),
    "member_billing": (0.50, (0, 0, 5, 95)),
    "cancellation": (0.60, (0, 0, 0, 100)),
    "wrong_number": (0.50, (0, 0, 0, 100)),
    "bot_only": (0.15, (0, 0, 50, 50)),
}
OTHER_KINDS = (0.30, (10, 15, 50, 25))
ORDER = (CONVERTED, VISITED, LEAD, NOT_LEAD)


# slug → the titles its agents use per outcome (the first is the one they pick; the mapping lists
# all), and the custom attribute some teams fill instead of a label.
DEMO_LABELS = {
    "allpfit": {CONVERTED: ["matricula"], VISITED: ["visitou"], LEAD: ["lead"], NOT_LEAD: ["aluno", "spam"]},
    "cdt_mossoro": {CONVERTED: ["Matrícula"], VISITED: ["visita_realizada"], LEAD: ["interessado"],
                    NOT_LEAD: ["Aluno", "engano"]},
    "investbem": {CONVERTED: ["matriculado"], VISITED: ["visitou"], LEAD: ["lead_quente"], NOT_LEAD: ["ja_aluno", "spam"]},
    "cdt_jp_sul": {CONVERTED: ["matricula", "matriculado"], VISITED: ["visitou"], LEAD: ["lead"], NOT_LEAD: ["aluno"]},
}
# CDT JP Sul's front desk records an enrolment in a conversation attribute, not a label.
DEMO_ATTRIBUTES = {"cdt_jp_sul": "resultado"}
UNMAPPED = ("vip", "retorno", "indicacao")  # labels about something else, which no outcome maps


def demo_features(slug: str) -> dict:
    """The label mapping of a demo tenant, as ``tenants set`` would write it (also the other spellings
    its agents use: the mapping ignores case and accents)."""
    labels = DEMO_LABELS.get(slug)
    if labels is None:
        return {}
    features = {f"labels_{outcome}": ",".join(titles) for outcome, titles in labels.items()}
    if slug in DEMO_ATTRIBUTES:
        features["outcome_attribute"] = DEMO_ATTRIBUTES[slug]
    return features


def draw_outcome(kind: str, rng: random.Random) -> str | None:
    share, weights = OUTCOME_ODDS.get(kind, OTHER_KINDS)
    if rng.random() >= share:
        return None
    return rng.choices(ORDER, weights=weights)[0]


def recorded(slug: str, kind: str, rng: random.Random) -> tuple[str | None, str]:
    """(cached_label_list, custom_attributes JSON) of one demo conversation."""
    outcome = draw_outcome(kind, rng)
    labels: list[str] = []
    attributes: dict = {}
    titles = DEMO_LABELS.get(slug)
    if outcome is not None and titles is not None:
        if outcome == CONVERTED and slug in DEMO_ATTRIBUTES:
            attributes[DEMO_ATTRIBUTES[slug]] = "Matriculado"
        else:
            title = titles[outcome][0] if rng.random() < 0.8 else rng.choice(titles[outcome])
            labels.append(title.upper() if rng.random() < 0.1 else title)  # some agents type in capitals
        if outcome in (CONVERTED, VISITED) and rng.random() < 0.4:
            labels.insert(0, titles[LEAD][0])  # the earlier label stays on: precedence resolves it
    if rng.random() < 0.05:
        labels.append(rng.choice(UNMAPPED))
    return (",".join(labels) or None), json.dumps(attributes)

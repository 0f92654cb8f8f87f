"""What the sales team recorded: a conversation's outcome from its Chatwoot labels.

A tenant maps its own label titles to four outcomes (features ``labels_converted``,
``labels_visited``, ``labels_lead``, ``labels_not_lead``) and may name a ``custom_attributes`` key
whose value counts as one more label (``outcome_attribute``). Titles match whatever their case
and accents: ``Matrícula``, ``MATRICULA`` and ``matricula`` are one label.

A conversation carrying labels of several outcomes takes the furthest one down the funnel,
``converted`` > ``visited`` > ``lead`` > ``not_lead``: agents add labels as a contact moves on and
seldom remove the earlier ones (``lead``, then ``visitou``, then ``matricula``), so the furthest
label is the latest fact. A ``not_lead`` label (``aluno``, ``spam``) beside a sales label is, in
practice, a member who re-enrolled or an agent's slip, and the sale is what the team counts.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

CONVERTED, VISITED, LEAD, NOT_LEAD = "converted", "visited", "lead", "not_lead"
# Furthest down the funnel first: the order conflicting labels are resolved in.
PRECEDENCE = (CONVERTED, VISITED, LEAD, NOT_LEAD)
LABEL_FEATURES = {CONVERTED: "labels_converted", VISITED: "labels_visited", LEAD: "labels_lead", NOT_LEAD: "labels_not_lead"}
# Outcomes that make a conversation a lead, and those that mean the contact came to the gym.
LEAD_OUTCOMES = frozenset({CONVERTED, VISITED, LEAD})
VISITED_OUTCOMES = frozenset({CONVERTED, VISITED})
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")


class LabelMappingError(ValueError):
    """A tenant's label mapping is malformed (the registry turns it into a ConfigError)."""


def fold_label(title: Any) -> str:
    """Case, accents and spacing do not make two labels different: ' Matrícula ' → 'matricula'."""
    decomposed = unicodedata.normalize("NFKD", str(title))
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().split())


def split_titles(text: str | None) -> list[str]:
    """Chatwoot's ``cached_label_list`` (or a feature's value): comma-separated titles, folded, blanks dropped."""
    if not text:
        return []
    return [folded for folded in (fold_label(part) for part in str(text).split(",")) if folded]


@dataclass(frozen=True)
class OutcomeMapping:
    """Folded label title → outcome, and the custom attribute read as one more label."""

    by_title: dict[str, str]
    attribute: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.by_title)


def build_mapping(lists: dict[str, str | None], attribute: str | None = None) -> OutcomeMapping:
    """The mapping from the four comma-separated lists (by outcome); a title in two lists is an error."""
    by_title: dict[str, str] = {}
    for outcome in PRECEDENCE:
        text = lists.get(outcome) or ""
        if not isinstance(text, str):
            raise LabelMappingError(f"feature {LABEL_FEATURES[outcome]} must be comma-separated label titles, got {text!r}")
        for title in split_titles(text):
            other = by_title.get(title)
            if other is not None and other != outcome:
                raise LabelMappingError(f"label {title!r} is in both {LABEL_FEATURES[other]} and {LABEL_FEATURES[outcome]}")
            by_title[title] = outcome
    if attribute is not None and (not isinstance(attribute, str) or not ATTRIBUTE_KEY.fullmatch(attribute)):
        raise LabelMappingError(f"feature outcome_attribute must be a custom attribute key (letters, digits, _ or -), got {attribute!r}")
    return OutcomeMapping(by_title, attribute)


def attribute_value(custom_attributes: Any, key: str | None) -> str | None:
    """The value of ``key`` in a Chatwoot ``custom_attributes`` column (a dict from PostgreSQL's
    jsonb, JSON text from SQLite) as label text; None when absent, empty, false or unreadable.
    A list counts as its comma-joined items (a multi-select attribute), ``true`` as the key itself."""
    if not key or custom_attributes in (None, ""):
        return None
    data = custom_attributes
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    value = data.get(key)
    if value is True:  # a checkbox attribute (``matriculado: true``) reads as the label named like its key
        return key
    if value is None or isinstance(value, (dict, bool)):
        return None
    if isinstance(value, list):
        value = ",".join(str(item) for item in value if item is not None)
    text = str(value).strip()
    return text or None


def outcome_of(labels: str | None, attribute: str | None, mapping: OutcomeMapping) -> str | None:
    """The conversation's outcome, or None when no label (nor the attribute) maps to one."""
    found = {mapping.by_title[t] for t in split_titles(labels) + split_titles(attribute) if t in mapping.by_title}
    return next((outcome for outcome in PRECEDENCE if outcome in found), None)

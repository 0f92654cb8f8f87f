"""A tenant's label mapping: titles matched whatever their case and accents, conflicting labels
resolved furthest-down-the-funnel first, custom attributes, and one clear error per bad mapping.
Pure functions, no database, no Dagster."""

from __future__ import annotations

import json

import pytest

from allpfit_etl.errors import ConfigError
from allpfit_etl.tenants.outcomes import (
    CONVERTED, LEAD, NOT_LEAD, VISITED, attribute_value, build_mapping, fold_label, outcome_of, split_titles,
)
from allpfit_etl.tenants.registry import TenantFeatures, coerce_feature_value, parse_features

MAPPING = build_mapping({CONVERTED: "Matrícula, matriculado", VISITED: "visitou", LEAD: "lead,interessado",
                         NOT_LEAD: "ALUNO,spam"}, "resultado")


def test_titles_fold_case_accents_and_spaces():
    assert fold_label("  MATRÍCULA ") == fold_label("matricula") == "matricula"
    assert fold_label("Não  Lead") == "nao lead"
    assert split_titles("Matrícula,, VISITOU ,") == ["matricula", "visitou"]
    assert split_titles(None) == [] and split_titles("") == []


@pytest.mark.parametrize("labels, expected", [
    ("matricula", CONVERTED),
    ("MATRÍCULA", CONVERTED),
    ("Matriculado", CONVERTED),
    ("visitou", VISITED),
    ("Interessado", LEAD),
    ("aluno", NOT_LEAD),
    ("Spam", NOT_LEAD),
    ("vip,retorno", None),  # labels the mapping does not know
    ("", None),
    (None, None),
])
def test_one_label_maps_to_its_outcome(labels, expected):
    assert outcome_of(labels, None, MAPPING) == expected


@pytest.mark.parametrize("labels, expected", [
    ("lead,visitou,matricula", CONVERTED),  # the usual history of a sale: the furthest label wins
    ("aluno,matrícula", CONVERTED),  # a member who enrolled again: the sale is what counts
    ("visitou,spam", VISITED),
    ("spam,lead", LEAD),
])
def test_conflicting_labels_take_the_furthest_outcome(labels, expected):
    assert outcome_of(labels, None, MAPPING) == expected


def test_a_custom_attribute_counts_as_one_more_label():
    assert outcome_of(None, "Matrícula", MAPPING) == CONVERTED
    assert outcome_of("lead", "visitou", MAPPING) == VISITED
    assert attribute_value(json.dumps({"resultado": "Matriculado"}), "resultado") == "Matriculado"
    assert attribute_value({"resultado": ["lead", "visitou"]}, "resultado") == "lead,visitou"
    assert attribute_value({"matriculado": True}, "matriculado") == "matriculado"
    for raw in ({"matriculado": False}, {"outro": "x"}, "{not json", None, "", {"resultado": "  "}, "[1, 2]"):
        assert attribute_value(raw, "resultado" if "resultado" in str(raw) else "matriculado") is None, raw
    assert attribute_value({"resultado": "lead"}, None) is None


def test_features_validate_the_mapping():
    features = parse_features({"labels_converted": "matricula", "labels_not_lead": "aluno,spam"})
    assert features.outcome_mapping().by_title == {"matricula": CONVERTED, "aluno": NOT_LEAD, "spam": NOT_LEAD}
    assert TenantFeatures().outcome_mapping().configured is False
    with pytest.raises(ConfigError, match="label 'matricula' is in both labels_converted and labels_not_lead"):
        TenantFeatures(labels_converted="Matrícula", labels_not_lead="MATRICULA").validated()
    with pytest.raises(ConfigError, match="labels_lead must be comma-separated label titles"):
        TenantFeatures(labels_lead=["lead"]).validated()
    with pytest.raises(ConfigError, match="outcome_attribute must be a custom attribute key"):
        TenantFeatures(outcome_attribute="a b").validated()


def test_the_cli_text_of_label_features():
    assert coerce_feature_value("labels_converted", " matricula , matriculado,") == "matricula,matriculado"
    assert coerce_feature_value("outcome_attribute", "resultado") == "resultado"
    assert coerce_feature_value("outcome_attribute", "none") is None

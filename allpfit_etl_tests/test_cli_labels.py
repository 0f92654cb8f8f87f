"""``allpfit-etl tenants set/list`` with the label mapping: set and listed as written, a label in two
outcomes or a bad attribute key refused in one line with nothing changed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from allpfit_etl.cli.main import main
from allpfit_etl.db import get_engine


@pytest.fixture
def home(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALLPFIT_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CHATWOOT_DATABASE_URL", raising=False)
    monkeypatch.delenv("ANALYTICS_DATABASE_URL", raising=False)
    assert main(["init"]) == 0
    assert main(["tenants", "add", "allpfit", "--name", "AllpFit", "--account-id", "1"]) == 0
    capsys.readouterr()
    return tmp_path


def features(home) -> str:
    with get_engine(f"sqlite:///{home / 'analytics.db'}").connect() as conn:
        return conn.execute(sa.text("SELECT features FROM tenant_configs WHERE slug = 'allpfit'")).scalar_one()


def test_label_features_are_set_and_listed(home, capsys):
    assert main(["tenants", "set", "allpfit", "labels_converted=Matrícula,matriculado", "labels_not_lead=aluno, spam",
                 "outcome_attribute=resultado"]) == 0
    out = capsys.readouterr().out
    assert "labels_converted=Matrícula,matriculado" in out and "labels_not_lead=aluno,spam" in out
    assert main(["tenants", "list"]) == 0
    listed = capsys.readouterr().out
    assert ("labels_converted=Matrícula,matriculado labels_not_lead=aluno,spam outcome_attribute=resultado  AllpFit"
            in listed)


@pytest.mark.parametrize("assignment, message", [
    ("labels_visited=MATRICULA", "label 'matricula' is in both labels_converted and labels_visited"),
    ("outcome_attribute=a b", "feature outcome_attribute must be a custom attribute key"),
    ("labels_won=matricula", "unknown tenant feature 'labels_won'"),
])
def test_a_bad_mapping_is_one_line_and_changes_nothing(home, capsys, assignment, message):
    assert main(["tenants", "set", "allpfit", "labels_converted=matricula"]) == 0
    before = features(home)
    capsys.readouterr()
    assert main(["tenants", "set", "allpfit", assignment]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err
    assert features(home) == before

"""``--from`` / ``--to`` take a date or a day relative to today (``runner.parse_day``), so that
scripts and the docs' examples need no fixed dates."""

from __future__ import annotations

import datetime as dt

import pytest

from allpfit_etl.cli import main as cli
from allpfit_etl.errors import ConfigError
from allpfit_etl.runner import DAY_FORMS, parse_day

TODAY = dt.date(2026, 3, 1)  # the day after a short February: relative days cross a month


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-11-16", dt.date(2025, 11, 16)),
    ("today", TODAY),
    ("Yesterday", dt.date(2026, 2, 28)),
    ("0-days-ago", TODAY),
    ("1-day-ago", dt.date(2026, 2, 28)),
    ("14-days-ago", dt.date(2026, 2, 15)),
    ("400-days-ago", dt.date(2025, 1, 25)),
])
def test_a_day_is_a_date_or_relative_to_today(text, expected):
    assert parse_day(text, "--from", TODAY) == expected


@pytest.mark.parametrize("text", ["2025-13-01", "tomorrow", "-3", "3-days", "days-ago", "3-weeks-ago", "14 days ago"])
def test_anything_else_is_one_line_naming_the_forms(text):
    with pytest.raises(ConfigError) as raised:
        parse_day(text, "--to", TODAY)
    assert str(raised.value) == f"bad --to date {text!r}: expected {DAY_FORMS}"


@pytest.mark.parametrize("command", ["run", "backfill"])
def test_the_help_names_the_forms_the_parser_takes(command, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args([command, "--help"])
    assert DAY_FORMS in " ".join(capsys.readouterr().out.split())

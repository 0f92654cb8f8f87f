"""The dashboard: ``allpfit-etl report`` on a pipeline run through Dagster (real PostgreSQL, the
bundled OpenAI server over HTTP), opened in Debian's headless Chromium — it shows its sections,
is not blank, and loads nothing from the network."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from PIL import Image

from allpfit_etl.cli.main import main
from allpfit_etl.tenants.registry import TenantFeatures, add_tenant
from allpfit_etl_tests.headless_chromium import HeadlessChromium
from allpfit_etl_tests.test_monitoring_pipeline import (  # noqa: F401  (fixtures)
    analytics_world, materialize, seeded_chatwoot,
)

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
EXTERNAL = re.compile(r"""(<script[^>]*\bsrc=|<link\b|<img\b|<iframe\b|@import|url\((?!#)|\b(src|href)=["']?(https?:)?//)""",
                      re.IGNORECASE)


@pytest.fixture
def report_world(make_pg_database, server, instance, monkeypatch, tmp_path):
    """An OpenAI tenant with a budget and a regex tenant with a shadow sample, run through Dagster."""
    world = analytics_world(make_pg_database, server, seeded_chatwoot(make_pg_database, 60),
                            TenantFeatures(use_openai=True, chunk_size=20, monthly_budget_brl=2.0))
    monkeypatch.setenv("ALLPFIT_REPORT_PATH", str(tmp_path / "asset_report.html"))
    materialize(world, instance)
    add_tenant(world["analytics"], "mossoro", "CDT Mossoró", 2, TenantFeatures(shadow_openai_sample=0.3))
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", world["resources"]["analytics"].url)
    return world


def full_page_screenshot(browser: HeadlessChromium, path: Path) -> None:
    height = int(browser.evaluate("document.documentElement.scrollHeight"))
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": 1600, "height": height, "scale": 1})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_report_is_one_offline_html_file_that_chromium_renders(report_world, tmp_path, capsys):
    out = tmp_path / "painel.html"
    assert main(["report", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert EXTERNAL.search(text) is None, EXTERNAL.search(text)
    for title in ("Gasto diário com OpenAI por tenant", "gasto × orçamento e projeção", "Taxa de leads por dia",
                  "Visitas agendadas por dia", "Concordância regex × OpenAI", "Exemplos de divergência"):
        assert title in text
    assert text.count("<svg") >= 5

    ARTIFACTS.mkdir(exist_ok=True)
    browser = HeadlessChromium(tmp_path / "chromium")
    try:
        browser.open(out.as_uri())
        body = browser.wait_for_text(["Leads, qualidade e custos por tenant", "Gym", "CDT Mossoró", "Exemplos de divergência"])
        # nothing fetched: no resource entries at all, and every image is inline SVG
        assert browser.evaluate("performance.getEntriesByType('resource').length") == 0
        assert browser.evaluate("document.querySelectorAll('svg').length") >= 5
        assert "R$" in body
        screenshot = ARTIFACTS / "monitoring_report.png"
        browser.screenshot(screenshot)
        full_page_screenshot(browser, ARTIFACTS / "monitoring_report_full.png")
    finally:
        browser.close()

    image = Image.open(screenshot).convert("RGB")
    colours = image.getcolors(maxcolors=1_000_000)
    assert image.size[0] == 1600 and colours is not None and len(colours) > 50  # drawn charts, not a blank page
    non_white = sum(count for count, rgb in colours if rgb != (255, 255, 255))
    assert non_white > 0.02 * image.size[0] * image.size[1]


def test_report_rejects_a_non_html_output(report_world, tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "painel.pdf")]) == 2
    assert "bad --out" in capsys.readouterr().err

"""Both reports opened in a real headless Chromium: no console errors, every section, every image decodes.

Debian's chromium at /usr/bin/chromium is used (never ``playwright install``); `.ci/run` installs it. The page
must also render from the file alone: any request other than the file itself and its data: URIs fails a test.
"""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest
from reporting_fixtures import compose_config, trained_churn_bank
from test_reports_segments import LABELS, SETTINGS, TIERS, make_scoring_output, write_scoring_dir

from bankseg.reports import model_report as mr
from bankseg.reports import segment_report as sr

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing: `.ci/run` installs Debian's "
                                                      "chromium package for the browser tests"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def open_report(browser, path: Path):
    """The loaded page and what went wrong while loading it (console errors, page errors, network requests)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type in (
        "error", "warning") else None)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("request", lambda req: problems.append(f"request: {req.url}") if not req.url.startswith(
        ("file:", "data:")) else None)
    page.goto(path.as_uri(), wait_until="load")
    return page, problems


def check_page(page, problems: list[str], sections, screenshot: Path) -> None:
    assert problems == []
    for section_id, title in sections:
        heading = page.locator(f"section#{section_id} > h2")
        assert heading.inner_text() == title
        assert page.locator(f"section#{section_id} > p.how").inner_text().startswith("How to read it:")
    # Readable on a laptop screen: nothing forces sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    widths = page.evaluate("Array.from(document.images).map(img => img.complete ? img.naturalWidth : 0)")
    assert widths and all(w > 0 for w in widths), f"undecodable images: {widths}"
    assert len(widths) == page.content().count("<img ")
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def model_report_path(tmp_path_factory) -> tuple[dict, Path]:
    from bankseg.cli.report import report_job

    bank = trained_churn_bank(tmp_path_factory)
    out = tmp_path_factory.mktemp("browser_reports")
    cfg = compose_config("report", bank["root"], bank["data_path"],
                         ["report=model", "model=churn", "reports.model.shap_sample_size=300", f"out_dir={out}"])
    return bank, report_job(cfg).path


def test_model_report_renders_in_chromium(browser, model_report_path, tmp_path):
    _, path = model_report_path
    page, problems = open_report(browser, path)
    check_page(page, problems, mr.SECTIONS, tmp_path / "model_report.png")
    page.locator("section#examples").screenshot(path=str(tmp_path / "model_report_examples.png"))


def test_model_report_numbers_in_the_browser_equal_mlflow(browser, model_report_path):
    bank, path = model_report_path
    page, _ = open_report(browser, path)
    cells = page.eval_on_selector_all(
        "td[data-metric]", "cells => cells.map(c => [c.dataset.metric, c.dataset.value, c.innerText])")
    logged = mlflow.MlflowClient().get_run(bank["run_id"]).data.metrics
    assert {metric for metric, _, _ in cells} == {k for k in logged if k.split("/")[0] in ("train", "val", "oot")}
    for metric, value, text in cells:
        assert float(value) == logged[metric]
        assert float(text.replace(",", "")) == pytest.approx(logged[metric], abs=5e-5 if "." in text else 0.5)


def test_segment_report_renders_in_chromium(browser, tmp_path):
    from bankseg.jobs.report import run_segment_report

    previous, _ = make_scoring_output(n=300, seed=1, as_of="2024-10-01")
    current, features = make_scoring_output(n=300, seed=2)
    run = run_segment_report(
        scoring_dir=write_scoring_dir(tmp_path / "now", current, features),
        previous_dir=write_scoring_dir(tmp_path / "before", previous), labels_zh=LABELS, tier_names=TIERS,
        settings=SETTINGS, out_dir=tmp_path / "reports")
    page, problems = open_report(browser, run.path)
    check_page(page, problems, sr.SECTIONS, tmp_path / "segment_report.png")
    grid = page.eval_on_selector_all("#tier-grid-table td[data-value]", "cells => cells.map(c => +c.dataset.value)")
    assert len(grid) == 25 and sum(grid) == len(current)
    assert re.search(r"Gold 黄金", page.locator("section#tiers").inner_text())
    page.locator("section#personas").screenshot(path=str(tmp_path / "segment_personas.png"))


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CHURN_CSV = SHARED / "churn_modelling" / "Churn_Modelling.csv"


@pytest.mark.skipif(not CHURN_CSV.exists(), reason=f"{CHURN_CSV} missing: ../shared/data is not beside the project")
def test_a_flat_sources_model_report_judges_the_hold_out_and_renders_in_chromium(browser, tmp_path):
    """Churn_Modelling (no time axis) trained, then `bankseg-report report=model data=churn_modelling` without
    data.path: the report is rebuilt from the data the champion learned from and every section judges the hold-out."""
    from hydra import compose, initialize_config_dir

    from bankseg.cli import CONFIG_DIR, train
    from bankseg.cli.report import report_job

    common = [f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlruns/mlflow.db", f"paths.root_dir={tmp_path}",
              f"paths.shared_data_dir={SHARED}", "data=churn_modelling", "model=churn"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        train.main(compose(config_name="train", overrides=[*common, "model.params.num_threads=1",
                                                           "build_report=false"]))
        cfg = compose(config_name="report", overrides=[*common, "report=model", f"out_dir={tmp_path / 'reports'}",
                                                       "reports.model.shap_sample_size=300"])
    path = report_job(cfg).path
    page, problems = open_report(browser, path)
    sections = mr.report_sections("test")
    assert dict(sections)["metrics"].endswith("hold-out") and "out-of-time" not in str(sections)
    check_page(page, problems, sections, tmp_path / "flat_model_report.png")
    card = page.locator("section#model-card").inner_text()
    assert "hold-out" in card and "Out-of-time as_of" not in card
    assert "bankseg-churn_modelling-churn" in card
    examples = page.locator("section#examples").inner_text()
    assert "Surname" not in examples and "CustomerId" not in examples

"""The model review report: its pieces, and one end-to-end build from a trained, registered churn model."""

from __future__ import annotations

import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from reporting_fixtures import compose_config, trained_churn_bank

from bankseg.data.io import read_table
from bankseg.reports import model_report as mr


# ------------------------------------------------------------------------------------------------ the pieces
def test_stratified_sample_keeps_every_stratum_in_proportion():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"as_of": np.repeat(["2024-01", "2024-04", "2024-07"], [5000, 3000, 2000]),
                          "label": (rng.random(10_000) < 0.03).astype(float)})
    frame.loc[frame.sample(200, random_state=1).index, "label"] = np.nan  # unlabelled rows are a stratum too
    idx = mr.stratified_sample(frame, ["as_of", "label"], 1000, seed=0)
    sample = frame.loc[idx]
    assert abs(len(sample) - 1000) <= 6  # rounding per stratum
    by_date = sample["as_of"].value_counts(normalize=True)
    assert by_date["2024-01"] == pytest.approx(0.5, abs=0.01) and by_date["2024-07"] == pytest.approx(0.2, abs=0.01)
    positives = frame["label"].eq(1).sum()
    assert sample["label"].eq(1).sum() == pytest.approx(positives / 10, abs=3)
    assert sample["label"].isna().sum() >= 1
    assert mr.stratified_sample(frame, ["as_of", "label"], 1000, seed=0).equals(idx)  # seeded


def test_stratified_sample_returns_everything_when_the_frame_is_small():
    frame = pd.DataFrame({"as_of": ["a", "b"], "label": [0.0, 1.0]})
    assert list(mr.stratified_sample(frame, ["as_of", "label"], 2000)) == [0, 1]


def test_disparate_impact_applies_the_four_fifths_rule():
    groups = pd.Series(["F"] * 100 + ["M"] * 100 + ["X"] * 5)
    selected = np.r_[np.arange(100) < 20, np.arange(100) < 15, np.ones(5, dtype=bool)]
    table = mr.disparate_impact(selected, groups, four_fifths=0.8, min_group_size=30).set_index("group")
    assert table.at["F", "selection_rate"] == pytest.approx(0.20)
    assert table.at["M", "impact_ratio"] == pytest.approx(0.75)  # 15% / 20%: fails the 80% rule
    assert table.at["M", "verdict"] == "below 80%" and table.at["F", "verdict"] == "passes"
    assert table.at["X", "verdict"] == "too few to judge"  # 100% selected, but 5 people set no reference


def test_top_fraction_selects_the_highest_scores():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.2, 0.3, 0.4, 0.8, 0.6, 0.05])
    assert np.flatnonzero(mr.top_fraction_selected(scores, 0.2)).tolist() == [1, 7]


def test_age_bands_read_naturally():
    assert mr.age_band_labels([0, 30, 45, 60]) == ["under 30", "30-44", "45-59", "60+"]


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="selection_fraction"):
        mr.ModelReportSettings(selection_fraction=1.5)
    with pytest.raises(ValueError, match="unknown keys"):
        mr.ModelReportSettings.from_dict({"shap_samples": 10})
    with pytest.raises(ValueError, match="limitations must be plain text"):
        mr.ModelReportSettings(limitations=({"SHAP explains the model, not the world": "..."},))


def test_shipped_settings_load():
    from importlib import resources

    import yaml

    text = resources.files("bankseg.conf").joinpath("reports", "default.yaml").read_text(encoding="utf-8")
    settings = mr.ModelReportSettings.from_dict(yaml.safe_load(text)["model"])
    assert settings.shap_sample_size == 2000 and set(settings.purposes) == {"churn", "conversion", "upgrade"}


# ---------------------------------------------------------------------------------------------- end to end
def logged_cells(page: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r'data-metric="([^"]+)" data-value="([^"]+)"', page)}


@pytest.fixture(scope="module")
def model_report(tmp_path_factory):
    from bankseg.cli.report import report_job

    bank = trained_churn_bank(tmp_path_factory)
    cfg = compose_config("report", bank["root"], bank["data_path"],
                         ["report=model", "model=churn", "reports.model.shap_sample_size=300"])
    result = report_job(cfg)
    return bank, result


@pytest.mark.slow
def test_report_numbers_equal_the_metrics_logged_to_mlflow(model_report):
    bank, result = model_report
    page = result.path.read_text(encoding="utf-8")
    logged = mlflow.MlflowClient().get_run(bank["run_id"]).data.metrics
    shown = logged_cells(page)
    expected = {k: v for k, v in logged.items() if k.split("/")[0] in ("train", "val", "oot")}
    assert set(shown) == set(expected)
    assert all(shown[k] == expected[k] for k in expected)  # exactly, not approximately
    assert f'data-metric="oot/auc" data-value="{logged["oot/auc"]!r}">{logged["oot/auc"]:.4f}<' in page
    assert "Rebuilt data check: the out-of-time AUC recomputed" in page  # the rebuilt frame is the trained one


@pytest.mark.slow
def test_report_is_written_under_reports_and_logged_to_the_training_run(model_report):
    bank, result = model_report
    assert result.path == bank["root"] / "reports" / "churn" / "model_report.html"
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(bank["run_id"], "reports")]
    assert "reports/model_report.html" in artifacts


@pytest.mark.slow
def test_report_has_every_section_states_its_sample_and_hides_customer_ids(model_report):
    bank, result = model_report
    page = result.path.read_text(encoding="utf-8")
    for section_id, title in mr.SECTIONS:
        assert f'id="{section_id}"' in page and title in page
    assert page.count('<p class="how">') == len(mr.SECTIONS)
    assert re.search(r"seeded sample of [\d,]+ of [\d,]+ rows, stratified by as_of x label", page)
    assert "shap_sample_size = 300" in page
    customers = read_table(bank["data_path"], "customers")["customer_id"]
    shown = {int(x) for x in re.findall(r"Customer (\d+) \(", page)}
    assert len(shown) == 3 and not shown & set(customers.tolist())  # pseudonyms, never the ids
    assert "below 0.1 stable, 0.1 to 0.25 a moderate shift" in page
    assert "quantile bins of the training values" in page


@pytest.mark.slow
def test_report_shows_the_spread_of_first_reasons_and_readable_example_codes(model_report):
    _, result = model_report
    page = result.path.read_text(encoding="utf-8")
    table = re.search(r'<table id="first-reasons-table">.*?</table>', page, re.S).group(0)
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    shares = [float(row[-1].rstrip("%")) for row in rows]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(100, abs=0.5)
    top = shares[0] / 100
    verdict = "One reason comes first for most customers" if top > 0.5 else "No single reason comes first"
    assert verdict in page
    reasons = re.findall(r"Reason codes: ([^<]+)<", page)
    assert len(reasons) == 3
    assert any(re.search(r"\d", r) and re.search(r"(above|below|the same as) the typical|on its|up|down", r)
               for r in reasons)
    assert not re.search(r"Reason codes: [^<]*\b(bal|txn|int|hold|cust)_[a-z_]+", page)  # no raw feature names

"""The segment profile report, from a hand-built scoring output that follows the scoring job's contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bankseg.jobs.report import run_segment_report
from bankseg.reports import segment_report as sr
from bankseg.reports.html import render
from bankseg.segments import load_default_segment_rules

RULES = load_default_segment_rules()
LABELS = RULES.labels_zh()
TIERS = list(RULES.composite_tier.names)
PERSONAS = {0: ("Elderly savers", "中老年储蓄客群"), 1: ("Young digital natives", "年轻数字化客群"),
            2: ("Payroll workers", "代发工资客群"), 3: ("Affluent investors", "投资理财客群")}
PRODUCTS = ["time_deposit", "credit_card", "mobile_banking", "wealth_management", "fund"]


def make_scoring_output(n: int = 400, seed: int = 0, as_of: str = "2025-01-01",
                        ids: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(segments, features) shaped like bankseg-score's output; persona 0 is old, persona 3 holds funds."""
    rng = np.random.default_rng(seed)
    # Ids far from any count or amount in the report, so a test can tell that none of them leaked into it.
    ids = np.arange(9_100_000_001_000, 9_100_000_001_000 + n) if ids is None else ids
    n = ids.size
    persona = rng.integers(0, 4, n)
    tier_idx = np.minimum(rng.geometric(0.55, n) - 1 + (persona == 3), 4)
    service_idx = np.where(rng.random(n) < 0.05, np.minimum(tier_idx + 1, 4), tier_idx)
    def pick(column, k):
        return (np.array(list(LABELS[column]))[rng.integers(0, len(LABELS[column]), k)])
    p_churn, p_conv, p_upg = rng.beta(1, 8, n), rng.beta(1, 5, n), rng.beta(1, 6, n)
    def band(p):
        return (np.select([p >= 0.3, p >= 0.1], ["high", "medium"], "low"))
    actions = pick("action", n)
    segments = pd.DataFrame({
        "customer_id": ids,
        "as_of": pd.Timestamp(as_of),
        "composite_tier": np.array(TIERS)[tier_idx],
        "service_tier": np.array(TIERS)[service_idx],
        "quadrant": pick("quadrant", n),
        "value_class": pick("value_class", n),
        "lifecycle": pick("lifecycle", n),
        "rfm_r": rng.integers(1, 6, n), "rfm_f": rng.integers(1, 6, n), "rfm_m": rng.integers(1, 6, n),
        "rfm_segment": pick("rfm_segment", n),
        "risk_appetite": pick("risk_appetite", n),
        "risk_appetite_source": np.where(rng.random(n) < 0.6, "questionnaire", "inferred"),
        "persona_id": persona,
        "persona_name": [PERSONAS[p][0] for p in persona],
        "persona_name_zh": [PERSONAS[p][1] for p in persona],
        "p_churn": p_churn, "churn_band": band(p_churn),
        "p_conversion": p_conv, "conversion_band": band(p_conv),
        "p_upgrade": p_upg, "upgrade_band": band(p_upg),
        "churn_reason_1": "aum_trend", "churn_reason_1_en": "AUM trend", "churn_reason_1_zh": "资产变化趋势",
        "clv": rng.lognormal(8, 1.2, n),
        "tier_value": rng.lognormal(10, 1.5, n),
        "action": actions,
        "action_en": [f"Do {a}" for a in actions],
        "action_zh": [f"策略 {a}" for a in actions],
        "next_best_product": np.where(rng.random(n) < 0.9, np.array(PRODUCTS)[rng.integers(0, 5, n)], None),
        "model_versions": json.dumps({"churn": "3", "conversion": "2", "upgrade": "2", "personas": "1"}),
    })
    features = pd.DataFrame({
        "customer_id": ids,
        "cust_age": np.where(persona == 0, rng.normal(68, 5, n), rng.normal(35, 8, n)),
        "bal_aum_adb_3m": segments["tier_value"] * 0.9,
        "txn_count_3m": rng.poisson(20, n).astype(float),
        "hold_n_products": rng.integers(1, 6, n).astype(float),
        **{f"hold_has_{p}": (rng.random(n) < 0.2).astype(int) for p in PRODUCTS},
    })
    features["hold_has_fund"] = np.where(persona == 3, (rng.random(n) < 0.9), rng.random(n) < 0.1).astype(int)
    return segments, features


def write_scoring_dir(folder: Path, segments: pd.DataFrame, features: pd.DataFrame | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    segments.to_parquet(folder / "segments.parquet", index=False)
    (folder / "summary.json").write_text(json.dumps({"customers": len(segments), "rejected": 0}))
    if features is not None:
        features.to_parquet(folder / "features.parquet", index=False)
    return folder


SETTINGS = sr.SegmentReportSettings(profile_features=("cust_age", "bal_aum_adb_3m", "txn_count_3m",
                                                      "hold_n_products"))


def build(segments, features=None, previous=None) -> str:
    run = sr.ScoringRun(segments, {"customers": len(segments)}, features)
    return render(sr.segment_report(run, LABELS, SETTINGS, tier_names=TIERS, previous=previous))


def test_labels_read_english_with_the_chinese_term_beside_it():
    assert sr.bilingual("composite_tier", "gold", LABELS) == "Gold 黄金"
    assert sr.bilingual("value_class", "potential_high", LABELS) == "Potential high 潜在高价值客户"
    assert sr.bilingual("quadrant", "nonexistent", LABELS) == "Nonexistent"


def test_distribution_keeps_the_configured_order_and_counts_every_customer():
    segments, _ = make_scoring_output()
    table = sr.distribution(segments, "composite_tier", LABELS)
    assert table["code"].tolist() == TIERS  # low to high, as configured, even for empty tiers
    assert table["customers"].sum() == len(segments)
    assert table.set_index("code").at["gold", "customers"] == (segments["composite_tier"] == "gold").sum()
    assert table["tier_value share"].sum() == pytest.approx(1.0)


def test_migration_matrix_counts_moves_new_and_departed_customers():
    previous = pd.Series(["mass", "mass", "gold", "gold"], index=[1, 2, 3, 4])
    current = pd.Series(["mass", "gold", "gold", "platinum"], index=[1, 2, 3, 5])
    matrix = sr.migration_matrix(previous, current, TIERS)
    assert matrix.loc["mass", "mass"] == 1 and matrix.loc["mass", "gold"] == 1
    assert matrix.loc["gold", "gold"] == 1 and matrix.loc["gold", sr.LEFT] == 1  # customer 4 left
    assert matrix.loc[sr.NEW, "platinum"] == 1  # customer 5 is new
    assert matrix.to_numpy().sum() == 5


@pytest.fixture(scope="module")
def built() -> tuple[pd.DataFrame, str]:
    segments, features = make_scoring_output(n=600, seed=3)
    return segments, build(segments, features)


def test_report_has_every_section_and_the_grid_matches_the_data(built):
    segments, page = built
    for section_id, title in sr.SECTIONS:
        assert f'id="{section_id}"' in page and title in page
    assert page.count('<p class="how">') == len(sr.SECTIONS)  # every section says how to read it
    cells = re.findall(r'data-composite="(\w+)" data-service="(\w+)" data-value="(\d+)"', page)
    assert len(cells) == 25
    expected = pd.crosstab(segments["composite_tier"], segments["service_tier"])
    for comp, serv, n in cells:
        actual = expected.at[comp, serv] if comp in expected.index and serv in expected.columns else 0
        assert int(n) == actual
    assert "Gold 黄金" in page and "Key 重点客户" in page


def test_report_shows_no_customer_id(built):
    segments, page = built
    assert not any(str(i) in page for i in segments["customer_id"])


def test_persona_cards_say_what_sets_each_persona_apart(built):
    _, page = built
    cards = {pid: re.search(rf'id="persona-{pid}">(.*?)</div>', page, re.S) for pid in PERSONAS}
    assert all(cards.values()), "one card per persona"
    assert "Higher age" in cards[0].group(1)  # persona 0 was drawn old
    assert "Mutual fund 基金" in cards[3].group(1)  # persona 3 holds funds far above the book
    assert "年轻数字化客群" in page


def test_report_without_features_says_so_and_still_builds():
    segments, _ = make_scoring_output()
    page = build(segments)
    assert "No feature table was available" in page
    assert 'id="persona-0"' in page


def test_a_scoring_output_missing_contract_columns_is_refused():
    segments, _ = make_scoring_output()
    with pytest.raises(ValueError, match=r"lacks columns \['quadrant'\]"):
        build(segments.drop(columns="quadrant"))


def test_job_writes_the_report_with_migration_from_a_previous_run(tmp_path):
    previous, _ = make_scoring_output(n=300, seed=1, as_of="2024-10-01")
    current, features = make_scoring_output(n=300, seed=2, ids=previous["customer_id"].to_numpy()[50:] + 50)
    prev_dir = write_scoring_dir(tmp_path / "score_2024_10", previous)
    cur_dir = write_scoring_dir(tmp_path / "score_2025_01", current, features)
    result = run_segment_report(scoring_dir=cur_dir, previous_dir=prev_dir, labels_zh=LABELS, tier_names=TIERS,
                                settings=SETTINGS, out_dir=tmp_path / "reports")
    page = result.path.read_text(encoding="utf-8")
    assert result.path == tmp_path / "reports" / "segments" / "segment_report.html"
    assert 'id="migration-composite-tier-table"' in page and sr.NEW in page and sr.LEFT in page
    stayed = int((previous.set_index("customer_id")["composite_tier"]
                  == current.set_index("customer_id")["composite_tier"].reindex(previous["customer_id"])).sum())
    assert f"Composite tier: {stayed:,} stayed" in page


@pytest.mark.slow
def test_report_of_real_scoring_runs_with_migration(trained_bank, tmp_path, monkeypatch):
    """End to end: two bankseg-score runs of the shared trained bank, then the report of the later one.

    The persona cards read the scoring run's feature sample (issue 14): the report rebuilds no features.
    """
    from bankseg.features import build
    from bankseg.scoring.score import run_score

    trained_bank.configure()
    runs = [
        run_score(as_of=as_of, out_dir=tmp_path / "score", mlflow_cfg=trained_bank.mlflow_cfg,
                  config={"job": "report-test"}, data_path=trained_bank.data_path,
                  feature_kwargs=trained_bank.feature_kwargs, progress=False, previous=previous, feature_sample=800)
        for as_of, previous in (("2025-01-01", None), ("2025-04-01", tmp_path / "score" / "2025-01-01"))
    ]
    sample = pd.read_parquet(runs[1].run_dir / "features.parquet")
    scored = pd.read_parquet(runs[1].run_dir / "segments", columns=["customer_id"])["customer_id"]
    assert 600 < len(sample) < 1000 and sample["customer_id"].is_unique  # about 800 of 2,500, hashed
    assert sample["customer_id"].isin(scored).all()
    assert (pd.to_datetime(sample["as_of"]) == pd.Timestamp("2025-04-01")).all()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the segment report rebuilt features")

    monkeypatch.setattr(build, "build_feature_table", no_rebuild)
    result = run_segment_report(
        scoring_dir=runs[1].run_dir, previous_dir=runs[0].run_dir, labels_zh=LABELS, tier_names=TIERS,
        settings=sr.SegmentReportSettings(), out_dir=tmp_path / "reports", data_path=trained_bank.data_path,
        feature_kwargs=trained_bank.feature_kwargs)
    page = result.path.read_text(encoding="utf-8")
    segments = pd.read_parquet(runs[1].run_dir / "segments")
    for section_id, _ in sr.SECTIONS:
        assert f'id="{section_id}"' in page
    cells = [int(n) for n in re.findall(r'data-composite="\w+" data-service="\w+" data-value="(\d+)"', page)]
    assert sum(cells) == len(segments) == runs[1].summary["counts"]["customers_out"]
    assert 'id="migration-composite-tier-table"' in page
    assert f"Behaviour and holdings come from the feature table of {len(sample):,} of these customers" in page


@pytest.mark.slow
def test_bankseg_report_segments_runs_from_the_composed_config(tmp_path):
    from reporting_fixtures import compose_config

    from bankseg.cli.report import report_job

    segments, features = make_scoring_output(n=200, seed=4)
    scoring = write_scoring_dir(tmp_path / "score" / "2025-01-01", segments, features)
    cfg = compose_config("report", tmp_path, tmp_path / "no-data",
                         ["report=segments", f"scoring_dir={scoring.parent}", "log_to_mlflow=false"])
    result = report_job(cfg)
    assert result.path == tmp_path / "reports" / "segments" / "segment_report.html"
    assert "200 customers" in result.path.read_text(encoding="utf-8")


def test_help_tells_a_business_user_how_to_ask_for_each_report():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "bankseg.cli.report", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "report=segments scoring_dir=" in out and "report=model model=churn" in out

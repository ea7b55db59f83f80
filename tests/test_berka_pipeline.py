"""Berka (issue 16, item 5), the one real source with a time axis, through the jobs of `make run-berka`: ingest,
features, personas and conversion, export, score, with the CZK tier bounds of its data config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import compose_config

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BANKSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))
BERKA = SHARED / "berka_pkdd99"

pytestmark = [pytest.mark.skipif(not BERKA.is_dir(), reason=f"Berka data not found at {BERKA}"), pytest.mark.slow]


def _cfg(job: str, root: Path, *overrides: str):
    store = [] if job in ("ingest", "features") else [f"mlflow.tracking_uri=sqlite:///{root}/mlruns/mlflow.db"]
    return compose_config(job, [f"paths.root_dir={root}", f"paths.shared_data_dir={SHARED}", "data=berka", *store,
                                *overrides])


def test_berka_goes_through_ingest_features_training_and_scoring_in_czk_tiers(tmp_path):
    from bankseg.cli import export, features, ingest, score, train

    canonical, feature_dir = tmp_path / "data" / "berka" / "canonical", tmp_path / "data" / "berka" / "features"
    summary = ingest.ingest_job(_cfg("ingest", tmp_path))
    assert summary.out_dir == canonical and summary.validation["n_rejected"] == 0
    aside = pd.DataFrame(summary.set_aside)
    for source, counts in summary.source_counts.items():  # every source row is used or set aside with a reason
        assert counts["read"] == counts["used"] + aside.loc[aside["source"] == source, "n_rows"].sum()
    customers = pd.read_parquet(canonical / "customers.parquet")
    assert len(customers) == 1_229

    features.main(_cfg("features", tmp_path, "as_of=plan", f"out_dir={feature_dir}"))
    labels = pd.read_parquet(feature_dir / "labels.parquet")
    dates = sorted(pd.to_datetime(labels["as_of"]).dt.strftime("%Y-%m-%d").unique())
    assert dates == ["1993-07-01", "1993-08-01", "1993-09-01", "1993-10-01", "1994-01-01"]  # 3-month labels

    common = [f"features_path={feature_dir}", "model.params.num_threads=1"]
    train.main(_cfg("train", tmp_path, "model=personas", *common[:1], "model.n_bootstrap=0", "model.n_init=1"))
    train.main(_cfg("train", tmp_path, "model=conversion", *common, f"report_dir={tmp_path / 'reports' / 'berka'}"))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    conversion = client.get_model_version_by_alias("bankseg-berka-conversion", "champion")
    metrics = client.get_run(conversion.run_id).data.metrics
    assert metrics["oot/auc"] > 0.8 and metrics["oot/n"] > 500  # reaching 40,000 CZK within 3 months
    assert (tmp_path / "reports" / "berka" / "conversion" / "model_report.html").is_file()
    names = {m.name for m in client.search_registered_models()}
    assert not names & {"bankseg-berka-churn", "bankseg-berka-upgrade", "bankseg-churn"}  # not supported, not mixed

    export.main(_cfg("export", tmp_path, f"features_path={feature_dir}"))
    out = tmp_path / "data" / "berka" / "scores" / "latest"
    score.main(_cfg("score", tmp_path, "as_of=latest", f"out_dir={out}"))
    run = out / "1994-04-01"
    segments = pd.read_parquet(run / "segments")
    rejects = pd.read_parquet(run / "rejects.parquet")
    counts = json.loads((run / "summary.json").read_text())["counts"]
    assert counts["customers_in"] == len(customers) == len(segments) + rejects["customer_id"].nunique()
    assert segments["customer_id"].is_unique
    assert set(segments["customer_id"]) | set(rejects["customer_id"].dropna()) == set(customers["customer_id"])

    # CZK bounds (conf/data/berka.yaml tier_bounds): every tier is used, and each holds its own value range
    shares = segments["composite_tier"].value_counts(normalize=True)
    assert set(shares.index) == {"mass", "gold", "platinum", "diamond", "private"} and shares["mass"] < 0.8
    bounds = {"mass": (0, 40_000), "gold": (40_000, 80_000), "platinum": (80_000, 150_000),
              "diamond": (150_000, 300_000), "private": (300_000, np.inf)}
    for tier, (lo, hi) in bounds.items():
        values = segments.loc[segments["composite_tier"] == tier, "tier_value"]
        assert values.between(lo, hi, inclusive="left").all(), tier
    # churn and upgrade are not modelled on Berka: no probability, no reasons, a band that says so
    for model in ("churn", "upgrade"):
        assert segments[f"p_{model}"].isna().all() and (segments[f"{model}_band"] == "not_modelled").all()
        assert segments[f"{model}_reason_1"].isna().all()
    assert segments["p_conversion"].notna().sum() > 500 and segments["conversion_reason_1_en"].notna().any()
    assert segments["persona_name"].notna().all()

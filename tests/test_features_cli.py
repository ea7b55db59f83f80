"""The bankseg-features job: the real composed config, its outputs, and its help text."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from bankseg.cli import CONFIG_DIR
from bankseg.cli.features import features_job
from bankseg.data.io import write_table
from bankseg.data.simulate import SimulatorParams, simulate_bank
from bankseg.features.labels import LABEL_COLUMNS


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("bank")
    bank = simulate_bank(SimulatorParams(n_customers=200, n_months=18, seed=11))
    for name in ("customers", "balances", "transactions", "holdings", "interactions"):
        write_table(bank[name], root, name)
    return root


def compose_features(overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="features", overrides=overrides, return_hydra_config=False)


def test_job_writes_features_and_labels_for_several_dates(dataset, tmp_path, capsys):
    months = pd.read_parquet(dataset / "balances.parquet", columns=["month"])["month"]
    last = months.max()
    early, late = (last - pd.DateOffset(months=9)).date(), (last - pd.DateOffset(months=1)).date()
    cfg = compose_features(
        [f"data.path={dataset}", f"as_of=[{early},{late}]", f"out_dir={tmp_path}", "features.n_buckets=2",
         "paths.root_dir=" + str(tmp_path)]
    )
    result = features_job(cfg)
    features = pd.read_parquet(tmp_path / "features.parquet")
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    assert sorted(features["as_of"].unique()) == [pd.Timestamp(early), pd.Timestamp(late)]
    assert not set(LABEL_COLUMNS) & set(features.columns)
    assert {"bal_aum_adb_3m", "txn_recency_days", "hold_n_products", "int_logins_1m", "cust_age"} <= set(features.columns)
    # the early date has its 6-month future in the data, the late one (1 month before the end) has none
    by_date = labels.groupby("as_of")[list(LABEL_COLUMNS)].count()
    assert (by_date.loc[pd.Timestamp(early)] > 0).all()
    assert (by_date.loc[pd.Timestamp(late)] == 0).all()
    assert result.summary["customers"].sum() == len(features)
    assert "features ->" in capsys.readouterr().out


def test_job_windows_come_from_config(dataset, tmp_path):
    cfg = compose_features(
        [f"data.path={dataset}", "as_of=2024-03-01", f"out_dir={tmp_path}", "features.windows=[2,9]",
         "with_labels=false", "paths.root_dir=" + str(tmp_path)]
    )
    features_job(cfg)
    features = pd.read_parquet(tmp_path / "features.parquet")
    assert {"txn_count_2m", "txn_count_9m", "bal_aum_adb_9m"} <= set(features.columns)
    assert "txn_count_3m" not in features.columns
    assert not (tmp_path / "labels.parquet").exists()


def test_job_refuses_a_missing_dataset_folder(tmp_path):
    cfg = compose_features([f"data.path={tmp_path / 'nope'}", "as_of=2024-03-01", f"out_dir={tmp_path}",
                            "paths.root_dir=" + str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="not a dataset folder"):
        features_job(cfg)


def test_help_tells_a_newcomer_what_to_set():
    out = subprocess.run(
        [sys.executable, "-m", "bankseg.cli.features", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "You must set:  as_of=" in out and "engine=pandas|spark" in out


def test_as_of_plan_builds_the_dates_bankseg_train_plans(dataset, tmp_path):
    from bankseg.models.oot_split import plan_as_of_dates

    cfg = compose_features([f"data.path={dataset}", "as_of=plan", f"out_dir={tmp_path}", "features.windows=[1,3]",
                            "paths.root_dir=" + str(tmp_path)])
    features_job(cfg)
    months = pd.read_parquet(dataset / "balances.parquet", columns=["month"])["month"]
    plan = plan_as_of_dates(months.min(), months.max(), horizon_months=6, history_months=3, n_train=4, step_months=3)
    written = sorted(pd.read_parquet(tmp_path / "features.parquet")["as_of"].unique())
    assert written == [*plan.train, plan.oot]
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    assert labels.loc[labels["as_of"] == plan.oot, "label_conversion"].notna().any()  # OOT labels exist


def test_two_workers_write_the_same_files_as_one(dataset, tmp_path, capsys):
    """Issue 14: buckets built in two worker processes give byte-identical features and labels files, whether
    each worker reads the tables filtered to its bucket (2 buckets) or buckets are scattered first (3)."""
    written = {}
    for workers, n_buckets in ((1, 1), (2, 1), (2, 3)):
        out = tmp_path / f"workers{workers}-{n_buckets}"
        cfg = compose_features([f"data.path={dataset}", "as_of=plan", "features.windows=[1,3]",
                                f"features.n_buckets={n_buckets}", f"out_dir={out}", f"workers={workers}",
                                "paths.root_dir=" + str(tmp_path)])
        result = features_job(cfg)
        assert f"{workers} workers" in capsys.readouterr().out
        written[workers, n_buckets] = result
    one = written[1, 1]
    assert one.summary["customers"].sum() > 0
    for result in (written[2, 1], written[2, 3]):
        assert one.features_path.read_bytes() == result.features_path.read_bytes()
        assert one.labels_path.read_bytes() == result.labels_path.read_bytes()

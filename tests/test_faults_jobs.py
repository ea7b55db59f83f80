"""Issue 15, items 1-2: a fault planted in a copy of the small test bank gets the same verdict in every job.

Each test copies the session's trained bank (tests/conftest.py ``trained_bank``), plants one fault of the
issue's fault table (or one that already passed, so it cannot regress), runs the job function and asserts the
verdict: the error message, or the rejects (count, reason) with in = out + rejects.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import compose_config

from bankseg.cli.features import run_features
from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
from bankseg.data.validate import DataValidationError
from bankseg.features.build import build_feature_table
from bankseg.scoring.score import read_output, run_score

pytestmark = pytest.mark.slow
AS_OF = "2025-03-01"
FIRST_PART = "part-00000.parquet"
JOBS = ("features", "train", "export", "score", "report")


# ------------------------------------------------------------------------------------------------ planting
def copy_bank(trained_bank, tmp_path: Path) -> Path:
    target = tmp_path / "bank"
    shutil.copytree(trained_bank.data_path, target, ignore=shutil.ignore_patterns("ground_truth*"))
    return target


def read_part(root: Path, table: str, part: str = FIRST_PART) -> pd.DataFrame:
    return pq.read_table(root / table / part).to_pandas()


def write_part(df: pd.DataFrame, root: Path, table: str, part: str = FIRST_PART) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), root / table / part)


def edit_part(root: Path, table: str, edit, part: str = FIRST_PART) -> pd.DataFrame:
    """Apply ``edit`` (frame -> frame) to one part of a table; returns the edited frame."""
    df = edit(read_part(root, table, part))
    write_part(df, root, table, part)
    return df


def add_transactions(root: Path, rows: pd.DataFrame) -> None:
    """Add rows as a new part file of transactions (the bank's own parts stay as they are)."""
    write_part(rows, root, "transactions", "part-99999.parquet")


def new_txn_ids(root: Path, n: int) -> np.ndarray:
    top = max(int(pq.read_table(p, columns=["txn_id"])["txn_id"].to_numpy().max())
              for p in (root / "transactions").glob("*.parquet"))
    return np.arange(top + 1, top + 1 + n)


# ------------------------------------------------------------------------------------------------ the jobs
def features_job(trained_bank, data: Path, out: Path, as_of=AS_OF, **kwargs):
    cfg = compose_config("features", [f"data.path={data}", f"paths.root_dir={trained_bank.root}", "as_of=x"])
    return run_features(data, as_of, out, **{**feature_kwargs_from(cfg), **kwargs},
                        label_settings=label_settings_from(cfg), validation=plain(cfg.validation))


def score_job(trained_bank, data: Path, out: Path, as_of=AS_OF, **kwargs):
    trained_bank.configure()
    cfg = compose_config("score", [f"data.path={data}", f"paths.root_dir={trained_bank.root}", "as_of=x"])
    return run_score(as_of=as_of, out_dir=out, mlflow_cfg=trained_bank.mlflow_cfg, config=plain(cfg),
                     data_path=data, feature_kwargs=trained_bank.feature_kwargs, chunk_customers=1000,
                     progress=False, validation=plain(cfg.validation), **kwargs)


def train_job(trained_bank, data: Path, out: Path, as_of_cfg: dict | None = None):
    from bankseg.jobs.train import run_train

    cfg = compose_config("train", [f"data.path={data}", f"paths.root_dir={trained_bank.root}", "model=churn",
                                   "model.params.num_threads=1",
                                   f"mlflow.tracking_uri=sqlite:///{trained_bank.root}/mlruns/mlflow.db"])
    return run_train(model_cfg=plain(cfg.model), data_cfg=plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
                     label_settings=label_settings_from(cfg), as_of_cfg={**plain(cfg.as_of), **(as_of_cfg or {})},
                     mlflow_cfg=trained_bank.mlflow_cfg, config=plain(cfg), register=False, use_ground_truth=False)


def export_job(trained_bank, data: Path, out: Path, reference_as_of: str | None = None):
    from bankseg.jobs.export import run_export

    cfg = compose_config("export", [f"data.path={data}", f"paths.root_dir={trained_bank.root}",
                                    f"mlflow.tracking_uri=sqlite:///{trained_bank.root}/mlruns/mlflow.db"])
    return run_export(data_path=data, feature_kwargs=feature_kwargs_from(cfg), segments_cfg=plain(cfg.segments),
                      model_cfgs=plain(cfg.models), mlflow_cfg=trained_bank.mlflow_cfg, config=plain(cfg),
                      reference_as_of=reference_as_of, drift_cfg=plain(cfg.scoring.drift))


def report_job(trained_bank, data: Path, out: Path):
    from bankseg.jobs.report import run_model_report
    from bankseg.reports.model_report import ModelReportSettings

    cfg = compose_config("report", [f"data.path={data}", f"paths.root_dir={trained_bank.root}", "model=churn",
                                    f"mlflow.tracking_uri=sqlite:///{trained_bank.root}/mlruns/mlflow.db"])
    return run_model_report(model_cfg=plain(cfg.model), data_path=data, feature_kwargs=feature_kwargs_from(cfg),
                            label_settings=label_settings_from(cfg), mlflow_cfg=trained_bank.mlflow_cfg,
                            settings=ModelReportSettings.from_dict(plain(cfg.reports.model)), out_dir=out,
                            log_to_mlflow=False, validation=plain(cfg.validation))


RUN = {"features": features_job, "train": train_job, "export": export_job, "score": score_job,
       "report": report_job}


def refusal(job: str, trained_bank, data: Path, out: Path) -> str:
    with pytest.raises(DataValidationError) as info:
        RUN[job](trained_bank, data, out)
    return str(info.value)


# ------------------------------------------------------------------------------------------------ clean runs
@pytest.fixture(scope="module")
def clean_features(trained_bank, tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("clean_features")
    features_job(trained_bank, trained_bank.data_path, out)
    return pd.read_parquet(out / "features.parquet")


@pytest.fixture(scope="module")
def clean_score(trained_bank, tmp_path_factory) -> pd.DataFrame:
    result = score_job(trained_bank, trained_bank.data_path, tmp_path_factory.mktemp("clean_score"))
    return read_output(result.run_dir).sort_values("customer_id", ignore_index=True)


def assert_accounted(result, n_customers: int) -> None:
    """in = out + rejects for the customers of a scoring run."""
    c = result.summary["counts"]
    assert c["customers_in"] == n_customers == c["customers_out"] + c["customers_rejected"]


def transaction_rejects(path: Path) -> pd.DataFrame:
    """The transactions rows of a rejects file (the test bank itself sets a few holdings rows aside)."""
    rejects = pd.read_parquet(path)
    return rejects[rejects["table"] == "transactions"].reset_index(drop=True)


def n_customers(root: Path) -> int:
    return len(pd.read_parquet(root / "customers", columns=["customer_id"]))


# --------------------------------------------------------------------------- refused the same way by every job
@pytest.mark.parametrize("job", JOBS)
def test_text_amount_is_refused_the_same_way_by_every_job(trained_bank, tmp_path, job):
    data = copy_bank(trained_bank, tmp_path)
    edit_part(data, "transactions", lambda d: d.assign(amount=d["amount"].round(2).astype("str")))
    message = refusal(job, trained_bank, data, tmp_path / "out")
    assert "transactions: column amount: expected float, got str" in message
    assert not (tmp_path / "out" / "features.parquet").exists()


@pytest.mark.parametrize("job", JOBS)
def test_every_missing_table_is_named_in_one_up_front_error_by_every_job(trained_bank, tmp_path, job):
    data = copy_bank(trained_bank, tmp_path)
    shutil.rmtree(data / "balances")
    shutil.rmtree(data / "transactions")
    message = refusal(job, trained_bank, data, tmp_path / "out")
    assert "balances: table is absent" in message and "transactions: table is absent" in message


@pytest.mark.parametrize("job", JOBS)
def test_truncated_parquet_is_named_with_its_table_and_path_by_every_job(trained_bank, tmp_path, job):
    data = copy_bank(trained_bank, tmp_path)
    path = data / "holdings" / FIRST_PART
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = refusal(job, trained_bank, data, tmp_path / "out")
    assert f"holdings: {path} is not a readable Parquet file (truncated or corrupt" in message
    assert "ArrowInvalid: Parquet magic bytes" not in message


@pytest.mark.parametrize("job", ["features", "score", "train"])
def test_empty_transactions_table_is_refused(trained_bank, tmp_path, job):
    data = copy_bank(trained_bank, tmp_path)
    for part in (data / "transactions").glob("*.parquet"):
        edit_part(data, "transactions", lambda d: d.iloc[:0], part.name)
    assert "transactions: table is empty [empty_table]" in refusal(job, trained_bank, data, tmp_path / "out")


@pytest.mark.parametrize("job", ["features", "score"])
def test_birth_date_in_1800_refuses_customers(trained_bank, tmp_path, job):
    data = copy_bank(trained_bank, tmp_path)
    edit_part(data, "customers", lambda d: d.assign(birth_date=d["birth_date"].where(
        d.index != 3, pd.Timestamp("1800-06-01"))))
    message = refusal(job, trained_bank, data, tmp_path / "out")
    assert "customers: age over 120 years" in message and "[implausible] (1 rows" in message


@pytest.mark.parametrize("job", ["features", "score"])
def test_birth_date_in_the_future_refuses_customers(trained_bank, tmp_path, job):
    data = copy_bank(trained_bank, tmp_path)
    edit_part(data, "customers", lambda d: d.assign(birth_date=d["birth_date"].where(
        d.index != 3, pd.Timestamp.now().normalize() + pd.DateOffset(years=5))))
    assert "customers: birth_date after as_of_today" in refusal(job, trained_bank, data, tmp_path / "out")


ALREADY_REFUSED = {
    "missing column": ("transactions", lambda d: d.drop(columns=["channel"]), "transactions: missing columns ['channel']"),
    "null key": ("transactions", lambda d: d.assign(txn_id=d["txn_id"].astype("float").where(d.index != 0)),
                 "transactions: null txn_id (a key)"),
    "duplicate customers": ("customers", lambda d: pd.concat([d, d.iloc[[0]]]),
                            "customers: duplicate key ['customer_id']"),
}


@pytest.mark.parametrize("fault", list(ALREADY_REFUSED))
@pytest.mark.parametrize("job", ["features", "score"])
def test_faults_refused_before_stay_refused(trained_bank, tmp_path, job, fault):
    table, edit, expected = ALREADY_REFUSED[fault]
    data = copy_bank(trained_bank, tmp_path)
    edit_part(data, table, edit)
    assert expected in refusal(job, trained_bank, data, tmp_path / "out")


# ------------------------------------------------------------------------------------------------ as_of range
@pytest.mark.parametrize("as_of", ["2020-01-01", "2031-01-01"])
def test_as_of_outside_the_data_is_refused_by_features_before_any_label(trained_bank, tmp_path, as_of):
    with pytest.raises(ValueError, match=r"as_of .* outside the data's range: .* covers 2023-01 to 2025-06") as info:
        features_job(trained_bank, trained_bank.data_path, tmp_path, as_of=as_of)
    assert as_of in str(info.value)
    assert not (tmp_path / "labels.parquet").exists() and not (tmp_path / "features.parquet").exists()


@pytest.mark.parametrize("as_of", ["2020-01-01", "2031-01-01"])
def test_as_of_outside_the_data_is_refused_by_score(trained_bank, tmp_path, as_of):
    with pytest.raises(ValueError, match=r"outside the data's range: .* covers 2023-01 to 2025-06"):
        score_job(trained_bank, trained_bank.data_path, tmp_path, as_of=as_of)
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")] if tmp_path.exists() else True


def test_as_of_outside_the_data_is_refused_by_train_and_export(trained_bank, tmp_path):
    with pytest.raises(ValueError, match=r"outside the data's range"):
        train_job(trained_bank, trained_bank.data_path, tmp_path, as_of_cfg={"train": ["2020-01-01"],
                                                                              "oot": "2025-01-01"})
    with pytest.raises(ValueError, match=r"reference_as_of 2031-01-01 outside the data's range"):
        export_job(trained_bank, trained_bank.data_path, tmp_path, reference_as_of="2031-01-01")


def test_bad_as_of_strings_are_still_refused(trained_bank, tmp_path):
    with pytest.raises(ValueError, match=r"month must be in 1\.\.12: 2025-13-45"):
        features_job(trained_bank, trained_bank.data_path, tmp_path, as_of="2025-13-45")
    assert not (tmp_path / "features.parquet").exists()


# -------------------------------------------------------------------------------- rows set aside, really
def test_duplicated_txn_ids_are_rejected_and_not_used_in_features_or_scores(trained_bank, tmp_path, clean_features,
                                                                           clean_score):
    data = copy_bank(trained_bank, tmp_path)
    txn = read_part(data, "transactions")
    customer = int(txn["customer_id"].iloc[0])
    add_transactions(data, txn[txn["customer_id"] == customer].head(30))  # the same 30 rows, txn_id and all
    features = features_job(trained_bank, data, tmp_path / "features")
    rejects = transaction_rejects(tmp_path / "features" / "rejects.parquet")
    assert len(rejects) == 30 and set(rejects["reason"]) == {"duplicate txn_id"}
    assert features.validation["counts"]["transactions"]["n_rejected"] == 30
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "features" / "features.parquet"), clean_features)

    result = score_job(trained_bank, data, tmp_path / "scores")
    output = read_output(result.run_dir).sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(output, clean_score)
    run_rejects = pd.read_parquet(result.run_dir / "rejects.parquet")
    assert (run_rejects["reason"] == "duplicate txn_id").sum() == 30
    assert_accounted(result, n_customers(data))


def test_amount_of_1e18_is_rejected_with_its_reason_and_scores_do_not_move(trained_bank, tmp_path, clean_score):
    data = copy_bank(trained_bank, tmp_path)
    row = read_part(data, "transactions").head(1).assign(txn_id=new_txn_ids(data, 1), amount=1e18)
    add_transactions(data, row)
    result = score_job(trained_bank, data, tmp_path / "scores")
    rejects = transaction_rejects(result.run_dir / "rejects.parquet")
    assert rejects[["stage", "reason"]].values.tolist() == [["validation", "amount above 1e+09"]]
    assert result.summary["validation"]["counts"]["transactions"]["n_rejected"] == 1
    pd.testing.assert_frame_equal(read_output(result.run_dir).sort_values("customer_id", ignore_index=True),
                                  clean_score)
    assert_accounted(result, n_customers(data))


ALREADY_REJECTED = {
    "negative amount": (lambda d: d.assign(amount=-5.0), "amount not > 0"),
    "infinite amount": (lambda d: d.assign(amount=np.inf), "non-finite amount"),
    "orphan": (lambda d: d.assign(customer_id=999_999_999), "orphan customer_id"),
    "future date": (lambda d: d.assign(ts=pd.Timestamp("2030-01-01")), "ts after the data's range"),
}


@pytest.mark.parametrize("fault", list(ALREADY_REJECTED))
def test_rows_rejected_before_are_still_rejected_and_left_out(trained_bank, tmp_path, clean_features, fault):
    edit, reason = ALREADY_REJECTED[fault]
    data = copy_bank(trained_bank, tmp_path)
    add_transactions(data, edit(read_part(data, "transactions").head(2).assign(txn_id=new_txn_ids(data, 2))))
    result = features_job(trained_bank, data, tmp_path / "out")
    rejects = transaction_rejects(tmp_path / "out" / "rejects.parquet")
    assert len(rejects) == 2 and set(rejects["reason"]) == {reason}
    counts = result.validation["counts"]["transactions"]
    assert counts["n_in"] == counts["n_kept"] + counts["n_rejected"] and counts["n_rejected"] == 2
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out" / "features.parquet"), clean_features)


# ------------------------------------------------------------------------------------ optional tables, warnings
@pytest.mark.parametrize("table", ["holdings", "interactions"])
def test_missing_optional_table_builds_features_without_it(trained_bank, tmp_path, clean_features, table):
    data = copy_bank(trained_bank, tmp_path)
    shutil.rmtree(data / table)
    result = features_job(trained_bank, data, tmp_path / "out")
    assert f"{table}: table is absent [missing_table] (0 rows)" in result.validation["warnings"]
    features = pd.read_parquet(tmp_path / "out" / "features.parquet")
    assert len(features) == len(clean_features)
    # the same as a bank whose customers have no such rows
    empty = {name: pd.read_parquet(trained_bank.data_path / name) for name in
             ("customers", "balances", "transactions", "holdings", "interactions")}
    empty[table] = empty[table].iloc[:0]
    expected = build_feature_table(empty, AS_OF, **{k: v for k, v in trained_bank.feature_kwargs.items()
                                                    if k not in ("spark_master", "engine")})
    pd.testing.assert_frame_equal(features, expected, check_categorical=False)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert f"{table}: table is absent [missing_table] (0 rows)" in summary["validation"]["warnings"]


def test_extra_column_warning_reaches_summaries_and_the_mlflow_run(trained_bank, tmp_path):
    data = copy_bank(trained_bank, tmp_path)
    for part in (data / "customers").glob("*.parquet"):
        edit_part(data, "customers", lambda d: d.assign(full_name="someone"), part.name)
    expected = "customers: extra columns ['full_name'] dropped [extra_columns]"
    features_job(trained_bank, data, tmp_path / "features")
    summary = json.loads((tmp_path / "features" / "summary.json").read_text())
    assert any(w.startswith(expected) for w in summary["validation"]["warnings"])

    result = score_job(trained_bank, data, tmp_path / "scores")
    scored = json.loads((result.run_dir / "summary.json").read_text())
    assert any(w.startswith(expected) for w in scored["validation"]["warnings"])
    logged = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/validation.json")
    assert any(w.startswith(expected) for w in logged["warnings"])
    tags = mlflow.get_run(result.run_id).data.tags
    assert tags["bankseg.validation.warnings"] == str(len(logged["warnings"]))
    assert "someone" not in json.dumps(scored) and "someone" not in json.dumps(logged)


# ------------------------------------------------------------------------------------------------ the segmenter
@pytest.fixture(scope="module")
def segmenter(trained_bank, clean_features):
    from bankseg.models.registry import SEGMENTER_MODEL, version_uri
    from bankseg.scoring.segmenter import segmenter_input

    trained_bank.configure()
    model = mlflow.pyfunc.load_model(version_uri(SEGMENTER_MODEL, trained_bank.segmenter_version))
    inner = model.unwrap_python_model()
    return model, inner, segmenter_input(clean_features.head(300), inner.input_columns)


def test_wrong_typed_segmenter_column_is_refused_reason_first_without_row_values(segmenter):
    from bankseg.scoring.segmenter import predict_segments

    model, _, x = segmenter
    broken = x.assign(bal_aum_adb_3m=x["bal_aum_adb_3m"].astype("str"))
    with pytest.raises(ValueError) as info:
        predict_segments(model, broken)
    message = str(info.value)
    assert message.startswith("segmenter input refused: 1 columns of the wrong type")
    assert "bal_aum_adb_3m (expected a number, got str)" in message and len(message) < 300
    shown = [*broken["bal_aum_adb_3m"].head(50), *x["customer_id"].astype(str).head(50)]
    assert not [v for v in shown if len(v) >= 3 and v in message]  # no row value (short ids match counts)


def test_unknown_segmenter_categories_are_counted_and_mapped_to_unknown(segmenter):
    from bankseg.scoring.segmenter import predict_segments

    model, inner, x = segmenter
    assert "cust_occupation" in inner.known_categories and "unknown" in inner.known_categories["cust_occupation"]
    odd = x.assign(cust_occupation=x["cust_occupation"].where(x.index >= 7, "astronaut"))
    assert inner.unknown_categories(odd) == {"cust_occupation": 7}
    as_unknown = x.assign(cust_occupation=x["cust_occupation"].where(x.index >= 7, "unknown"))
    pd.testing.assert_frame_equal(predict_segments(model, odd), predict_segments(model, as_unknown))


def test_unknown_categories_are_reported_in_the_scoring_summary(trained_bank, tmp_path, clean_features):
    features = clean_features.assign(cust_occupation=clean_features["cust_occupation"].astype("str"))
    features.loc[:4, "cust_occupation"] = "astronaut"
    path = tmp_path / "features.parquet"
    features.to_parquet(path)
    trained_bank.configure()
    result = run_score(as_of=AS_OF, out_dir=tmp_path / "scores", mlflow_cfg=trained_bank.mlflow_cfg,
                       config={"job": "score-test"}, features_path=path, chunk_customers=1000, progress=False)
    assert result.summary["unknown_categories"] == {"cust_occupation": 5}
    assert json.loads((result.run_dir / "summary.json").read_text())["unknown_categories"] == {"cust_occupation": 5}
    assert_accounted(result, features["customer_id"].nunique())

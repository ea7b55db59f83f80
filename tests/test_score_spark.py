"""engine=spark gives the pandas engine's output, column by column, and its rejects on the same input (local[2]);
a customer Spark loses fails the run's count check."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_score import NEW_CUSTOMER, plant_bad_rows

from bankseg.data.privacy import pseudonymisation_key, pseudonymise
from bankseg.scoring import spark as spark_module
from bankseg.scoring.score import read_output, run_score

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]
AS_OF = "2025-03-01"


def _common(trained_bank, data_path) -> dict:
    trained_bank.configure()
    return dict(
        as_of=AS_OF, mlflow_cfg=trained_bank.mlflow_cfg, config={"job": "score-spark-test"},
        data_path=data_path, feature_kwargs=trained_bank.feature_kwargs, chunk_customers=1000, progress=False,
    )


def test_spark_engine_matches_pandas_engine(trained_bank, spark, tmp_path):
    common = _common(trained_bank, trained_bank.data_path)
    pandas_run = run_score(out_dir=tmp_path / "pandas", engine="pandas", **common)
    spark_run = run_score(out_dir=tmp_path / "spark", engine="spark", **common)
    expected = read_output(pandas_run.run_dir).sort_values("customer_id", ignore_index=True)
    got = read_output(spark_run.run_dir).sort_values("customer_id", ignore_index=True)
    assert len(expected) > 0
    assert list(got.columns) == list(expected.columns)
    assert got["customer_id"].tolist() == expected["customer_id"].tolist()
    for column in expected.columns:
        e, g = expected[column], got[column]
        if pd.api.types.is_float_dtype(e):
            np.testing.assert_allclose(g.to_numpy(float), e.to_numpy(float), rtol=0, atol=1e-9, err_msg=column)
        else:
            assert (e.isna() == g.isna()).all(), column
            assert (e[e.notna()].astype(str) == g[g.notna()].astype(str)).all(), column
    assert spark_run.summary["counts"] == pandas_run.summary["counts"]
    drift = {(r["model"], r["variable"]): r["psi"] for r in pandas_run.summary["drift"]}
    for row in spark_run.summary["drift"]:
        assert row["psi"] == pytest.approx(drift[(row["model"], row["variable"])], abs=1e-12)


def test_spark_rejects_equal_pandas_rejects_on_a_bank_with_bad_rows(trained_bank, spark, tmp_path):
    data_path = tmp_path / "bank"
    plant_bad_rows(trained_bank.data_path, data_path)
    common = _common(trained_bank, data_path)
    pandas_run = run_score(out_dir=tmp_path / "pandas", engine="pandas", **common)
    spark_run = run_score(out_dir=tmp_path / "spark", engine="spark", **common)
    expected = pd.read_parquet(pandas_run.run_dir / "rejects.parquet")
    got = pd.read_parquet(spark_run.run_dir / "rejects.parquet")
    # the late customer (opened after as_of) and the rows validation refused, in both engines
    late = expected[expected["customer_id"] == NEW_CUSTOMER]
    assert late["stage"].tolist() == ["features"] and late["reason"].str.contains("no account open").all()
    assert {"transactions", "interactions"} <= set(expected.loc[expected["stage"] == "validation", "table"])
    pd.testing.assert_frame_equal(got, expected)
    assert spark_run.summary["counts"] == pandas_run.summary["counts"]


def test_count_check_fails_on_a_customer_spark_loses(trained_bank, spark, tmp_path, monkeypatch):
    from pyspark.sql import functions as F

    customers = pd.read_parquet(trained_bank.data_path / "customers", columns=["customer_id", "open_date"])
    lost = int(customers.loc[customers["open_date"] < AS_OF, "customer_id"].max())
    real = spark_module.feature_frame

    def loses_one_customer(*args, **kwargs):  # a row dropped between feature building and scoring
        return real(*args, **kwargs).filter(F.col("customer_id") != lost)

    monkeypatch.setattr(spark_module, "feature_frame", loses_one_customer)
    out_dir = tmp_path / "scores"
    with pytest.raises(ValueError, match="1 neither scored nor rejected: the spark engine") as caught:
        run_score(out_dir=out_dir, engine="spark", **_common(trained_bank, trained_bank.data_path))
    message = str(caught.value)
    assert "no account open" not in message
    assert re.search(rf"\b{lost}\b", message) is None  # pseudonyms only, never the bank's id
    assert str(pseudonymise([lost], pseudonymisation_key())[0]) in message
    assert not (out_dir / AS_OF).exists()  # nothing published

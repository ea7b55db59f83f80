"""engine=spark gives the pandas engine's output, column by column, on the same input (local[2])."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bankseg.scoring.score import read_output, run_score

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]
AS_OF = "2025-03-01"


def test_spark_engine_matches_pandas_engine(trained_bank, spark, tmp_path):
    trained_bank.configure()
    common = dict(
        as_of=AS_OF, mlflow_cfg=trained_bank.mlflow_cfg, config={"job": "score-spark-test"},
        data_path=trained_bank.data_path, feature_kwargs=trained_bank.feature_kwargs, chunk_customers=1000,
        progress=False,
    )
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

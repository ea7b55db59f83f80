"""The Spark engine gives the pandas engine's values (same rows, columns, dtypes) on a simulated bank."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bankseg.data.io import write_table
from bankseg.data.simulate import SimulatorParams, simulate_bank
from bankseg.features.build import build_feature_table
from bankseg.features.labels import LabelSettings

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]
DATES = ["2023-09-01", "2024-02-15"]
# the `spark` fixture (one local[2] session for the whole test run) is in conftest.py


@pytest.fixture(scope="module")
def bank() -> dict[str, pd.DataFrame]:
    tables = simulate_bank(SimulatorParams(n_customers=200, n_months=18, seed=5))
    return {n: tables[n] for n in ("customers", "balances", "transactions", "holdings", "interactions")}


def test_spark_engine_matches_pandas_on_a_dataset_folder(spark, bank, tmp_path):
    for name, frame in bank.items():
        for part in range(2):
            write_table(frame.iloc[part::2], tmp_path, name, part=part)
    expected = build_feature_table(tmp_path, DATES, label_settings=LabelSettings())
    got = build_feature_table(tmp_path, DATES, engine="spark", n_buckets=3, label_settings=LabelSettings())
    pd.testing.assert_frame_equal(got, expected)
    assert expected["label_churn"].notna().any()  # labels really compared, not only NaN == NaN


def test_spark_engine_matches_pandas_on_frames_for_some_customers(spark, bank):
    ids = np.sort(bank["customers"]["customer_id"].to_numpy())[::3]
    expected = build_feature_table(bank, DATES[0], customers=ids, windows=[2, 5])
    got = build_feature_table(bank, DATES[0], customers=ids, windows=[2, 5], engine="spark")
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) > 20

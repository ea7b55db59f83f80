"""Training reads a bankseg-features folder once per process for all the models it trains (issue 14)."""

from __future__ import annotations

import os

import pandas as pd

from bankseg.data.io import write_table
from bankseg.jobs import train


def _folder(tmp_path, value: float):
    dates = pd.to_datetime(["2024-01-01", "2024-04-01"])
    keys = pd.DataFrame({"customer_id": [1, 2, 1, 2], "as_of": dates.repeat(2)})
    write_table(keys.assign(bal_aum_adb_3m=value), tmp_path, "features")
    write_table(keys.assign(label_churn=[0.0, 1.0, 0.0, float("nan")]), tmp_path, "labels")
    return list(dates)


def test_the_second_model_reuses_the_table_and_a_rewritten_folder_is_read_again(tmp_path, monkeypatch):
    dates = _folder(tmp_path, 5.0)
    reads = []
    real = train.read_table
    monkeypatch.setattr(train, "read_table", lambda *a, **k: reads.append(a[1]) or real(*a, **k))
    first = train.read_feature_table(tmp_path, dates)
    first["bal_aum_adb_3m"] = -1.0  # one model's change stays its own
    second = train.read_feature_table(tmp_path, dates)
    assert reads == ["features", "labels"]
    assert second["bal_aum_adb_3m"].tolist() == [5.0] * 4 and second["label_churn"].notna().sum() == 3
    _folder(tmp_path, 7.0)
    os.utime(tmp_path / "features.parquet", ns=(1, 1))  # another modification time, whatever the clock
    assert train.read_feature_table(tmp_path, dates)["bal_aum_adb_3m"].tolist() == [7.0] * 4
    assert reads == ["features", "labels"] * 2

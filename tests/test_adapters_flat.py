"""Flat labelled snapshots (Bank Marketing, Churn_Modelling, any new CSV): config in, trainable frame out, no identifiers."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from bankseg.data.adapters import FlatSpec, load_flat_snapshot

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BANKSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))
KEY = b"test-pseudonym-key-0123456789"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared real data not found at {SHARED}")


def spec_from_conf(name: str) -> FlatSpec:
    """The spec of conf/data/<name>.yaml with ${paths.shared_data_dir} resolved as Hydra would."""
    cfg = OmegaConf.create({"paths": {"shared_data_dir": str(SHARED)}, "data": OmegaConf.load(ROOT / "conf" / "data" / f"{name}.yaml")})
    return FlatSpec.from_dict(OmegaConf.to_container(cfg.data, resolve=True))


@needs_shared
def test_churn_modelling_loads_with_label_and_types():
    spec = spec_from_conf("churn_modelling")
    frame = load_flat_snapshot(spec, key=KEY)
    raw = pd.read_csv(spec.path)
    assert len(frame) == len(raw) == 10_000
    assert frame["customer_id"].is_unique and frame["customer_id"].dtype == np.int64
    assert frame["label_churn"].dtype == np.int8
    np.testing.assert_array_equal(frame["label_churn"].to_numpy(), raw["Exited"].to_numpy())
    assert isinstance(frame["geography"].dtype, pd.CategoricalDtype)
    assert set(frame["geography"].cat.categories) == {"France", "Germany", "Spain"}
    assert frame["balance"].dtype == np.float64
    assert (frame["split"] == "train").all()


@needs_shared
def test_churn_modelling_output_holds_no_surname_or_customer_id():
    spec = spec_from_conf("churn_modelling")
    frame = load_flat_snapshot(spec, key=KEY)
    with spec.path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    surnames = {r["Surname"] for r in rows}
    customer_ids = {int(r["CustomerId"]) for r in rows}
    row_numbers = {int(r["RowNumber"]) for r in rows}

    assert not {"RowNumber", "CustomerId", "Surname"} & set(frame.columns)
    assert not any(s.lower() in str(c).lower() for c in frame.columns for s in ("surname", "customerid", "rownumber"))
    text_values = set()
    for col in frame.columns:
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            text_values |= set(map(str, values.cat.categories))
        elif not pd.api.types.is_numeric_dtype(values.dtype):
            text_values |= set(map(str, values.unique()))
    assert not surnames & text_values
    numbers = np.concatenate([frame[c].to_numpy(dtype=np.float64) for c in frame.columns
                              if pd.api.types.is_numeric_dtype(frame[c].dtype)])
    assert not np.isin(numbers, np.array(sorted(customer_ids), dtype=np.float64)).any()
    # Row numbers are small integers that features (age, tenure) share; the id column must not equal them.
    assert not np.array_equal(np.sort(frame["customer_id"].to_numpy()), np.array(sorted(row_numbers)))


@needs_shared
def test_bank_marketing_excludes_duration_and_labels_conversion():
    spec = spec_from_conf("bank_marketing")
    frame = load_flat_snapshot(spec, key=KEY)
    assert len(frame) == 41_188
    assert "duration" not in frame.columns
    assert frame["label_conversion"].sum() == 4_640  # y == "yes" in bank-additional-full.csv (11.3%)
    assert {"emp_var_rate", "euribor3m", "nr_employed"} <= set(frame.columns)
    assert all(isinstance(frame[c].dtype, pd.CategoricalDtype) for c in ("job", "month", "poutcome"))
    assert frame["customer_id"].is_unique


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False, sep="|")
    return path


def small_rows(n: int = 40) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "ClientNo": f"C{1000 + i}",
            "FullName": f"Person Number{i}",
            "phone": f"+86 138 0000 {i:04d}",
            "age": int(rng.integers(18, 80)),
            "balance": round(float(rng.gamma(2.0, 5000.0)), 2),
            "region": ["north", "south", "east"][i % 3],
            "outcome": "churned" if i % 4 == 0 else "stayed",
        }
        for i in range(n)
    ]


def small_spec(path: Path, **changes) -> dict:
    spec = {
        "name": "my_bank", "kind": "flat", "path": str(path), "sep": "|", "id_column": "ClientNo",
        "drop": ["FullName"], "label": {"column": "outcome", "positive": "churned", "name": "churn"},
        "exclude": [], "categorical": ["region"], "rename": {"balance": "aum"},
    }
    spec.update(changes)
    return spec


def test_a_new_flat_csv_becomes_trainable_from_config_alone(tmp_path, caplog):
    rows = small_rows()
    path = write_csv(tmp_path / "my_bank.csv", rows)
    with caplog.at_level(logging.INFO, logger="bankseg.data.adapters.flat"):
        frame = load_flat_snapshot(FlatSpec.from_dict(small_spec(path)), key=KEY)
    assert list(frame.columns) == ["customer_id", "age", "aum", "region", "label_churn", "split"]
    assert frame["label_churn"].tolist() == [int(r["outcome"] == "churned") for r in rows]
    assert frame["aum"].tolist() == [r["balance"] for r in rows]
    # phone was not listed in `drop`: its name marks it as a direct identifier, so it is dropped anyway.
    assert "phone" not in frame.columns
    logged = caplog.text
    for r in rows:
        assert r["FullName"] not in logged and r["phone"] not in logged and r["ClientNo"] not in logged

    from bankseg.models.propensity import select_feature_columns

    features, categorical = select_feature_columns(frame)
    assert features == ["age", "aum", "region"] and categorical == ["region"]


def test_pseudonyms_follow_the_key_and_the_id(tmp_path):
    path = write_csv(tmp_path / "my_bank.csv", small_rows())
    spec = FlatSpec.from_dict(small_spec(path))
    a = load_flat_snapshot(spec, key=KEY)["customer_id"]
    b = load_flat_snapshot(spec, key=KEY)["customer_id"]
    c = load_flat_snapshot(spec, key=b"another-key-of-enough-length")["customer_id"]
    assert a.equals(b) and not np.isin(c, a).any()


def test_undeclared_text_column_is_refused(tmp_path):
    rows = [{**r, "comment": "called, spoke to Mrs Smith"} for r in small_rows()]
    path = write_csv(tmp_path / "my_bank.csv", rows)
    with pytest.raises(ValueError, match=r"text columns \['comment'\] are not declared"):
        load_flat_snapshot(FlatSpec.from_dict(small_spec(path)), key=KEY)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"label": {"column": "target", "positive": 1, "name": "churn"}}, "label column 'target' is not in the file"),
        ({"drop": ["FullName", "Nickname"]}, r"drop names columns not in the file: \['Nickname'\]"),
        ({"exclude": ["duration"]}, r"exclude names columns not in the file: \['duration'\]"),
        ({"id_column": "CustomerId"}, "id_column 'CustomerId' is not in the file"),
        ({"kind": "canonical"}, "kind must be 'flat'"),
        ({"lable": {}}, r"unknown keys \['lable'\]"),
        ({"rename": {"balance": "label_churn"}}, "rename gives clashing or reserved names"),
    ],
)
def test_config_errors_name_the_problem(tmp_path, changes, message):
    path = write_csv(tmp_path / "my_bank.csv", small_rows())
    with pytest.raises(ValueError, match=message):
        FlatSpec.from_dict(small_spec(path, **changes))


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        FlatSpec.from_dict(small_spec(tmp_path / "absent.csv"))


def test_duplicate_ids_and_one_class_labels_are_refused(tmp_path):
    rows = small_rows()
    rows[1]["ClientNo"] = rows[0]["ClientNo"]
    path = write_csv(tmp_path / "dup.csv", rows)
    with pytest.raises(ValueError, match="1 duplicate ids"):
        load_flat_snapshot(FlatSpec.from_dict(small_spec(path)), key=KEY)
    one_class = [{**r, "outcome": "stayed"} for r in small_rows()]
    path = write_csv(tmp_path / "one.csv", one_class)
    with pytest.raises(ValueError, match="needs both classes"):
        load_flat_snapshot(FlatSpec.from_dict(small_spec(path)), key=KEY)


def test_label_values_outside_positive_and_negative_are_refused(tmp_path):
    rows = small_rows()
    rows[3]["outcome"] = "unknown"
    path = write_csv(tmp_path / "odd.csv", rows)
    spec = small_spec(path, label={"column": "outcome", "positive": "churned", "negative": "stayed", "name": "churn"})
    with pytest.raises(ValueError, match="1 label values are neither positive nor negative"):
        load_flat_snapshot(FlatSpec.from_dict(spec), key=KEY)


def test_without_id_column_row_numbers_are_pseudonymised(tmp_path):
    path = write_csv(tmp_path / "my_bank.csv", small_rows())
    spec = small_spec(path, id_column=None, drop=["FullName", "ClientNo"])
    frame = load_flat_snapshot(FlatSpec.from_dict(spec), key=KEY)
    assert frame["customer_id"].is_unique
    assert not np.isin(frame["customer_id"], np.arange(0, len(frame) + 2)).any()

"""Keyed pseudonyms and direct-identifier dropping: what keeps real customers' identities out of artifacts."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from bankseg.data import privacy
from bankseg.data.privacy import (
    DEVELOPMENT_KEY,
    KEY_ENV,
    drop_direct_identifiers,
    pseudonymisation_key,
    pseudonymise,
)

KEY = b"k" * 32
OTHER_KEY = b"q" * 32


def test_pseudonyms_are_stable_non_negative_int64_and_keyed():
    ids = np.array([15634602, 15647311, 15634602, 1])
    first = pseudonymise(ids, KEY)
    assert first.dtype == np.int64
    assert (first >= 0).all()
    assert first[0] == first[2] and len(set(first.tolist())) == 3
    np.testing.assert_array_equal(first, pseudonymise(ids, KEY))
    other = pseudonymise(ids, OTHER_KEY)
    assert not np.isin(other, first).any()  # another key, unrelated pseudonyms


def test_pseudonym_does_not_reveal_the_id():
    ids = np.arange(1, 1001)
    hashed = pseudonymise(ids, KEY)
    assert not np.isin(hashed, ids).any()
    # Neighbouring ids do not get neighbouring pseudonyms: the order is scrambled.
    assert abs(np.corrcoef(ids, hashed)[0, 1]) < 0.2


def test_an_id_hashes_the_same_as_int_float_or_text():
    as_int = pseudonymise(pd.Series([15634602]), KEY)
    as_float = pseudonymise(pd.Series([15634602.0]), KEY)
    as_text = pseudonymise(pd.Series(["15634602"]), KEY)
    assert as_int[0] == as_float[0] == as_text[0]


def test_many_distinct_ids_get_distinct_pseudonyms():
    ids = np.arange(200_000) * 7 + 3
    assert len(np.unique(pseudonymise(ids, KEY))) == len(ids)


@pytest.mark.parametrize("values", [[1.0, np.nan, 3.0], ["a", None]])
def test_missing_ids_are_refused(values):
    with pytest.raises(ValueError, match="missing ids"):
        pseudonymise(pd.Series(values), KEY)


def test_fractional_ids_and_short_keys_are_refused():
    with pytest.raises(ValueError, match="whole numbers"):
        pseudonymise(pd.Series([1.5]), KEY)
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        pseudonymise([1, 2], b"short")


def test_key_from_environment_hex_or_text():
    hex_key = "ab" * 32
    assert pseudonymisation_key({KEY_ENV: hex_key}) == bytes.fromhex(hex_key)
    assert pseudonymisation_key({KEY_ENV: "a passphrase of some length"}) == b"a passphrase of some length"
    with pytest.raises(ValueError, match=KEY_ENV):
        pseudonymisation_key({KEY_ENV: "tiny"})


def test_unset_key_falls_back_to_development_key_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(privacy, "_warned_development_key", False)
    with caplog.at_level(logging.WARNING, logger="bankseg.data.privacy"):
        assert pseudonymisation_key({}) == DEVELOPMENT_KEY
        assert pseudonymisation_key({}) == DEVELOPMENT_KEY
    warnings = [r for r in caplog.records if KEY_ENV in r.getMessage()]
    assert len(warnings) == 1
    assert "development key" in warnings[0].getMessage()


def test_direct_identifiers_are_dropped_and_the_rest_kept():
    frame = pd.DataFrame({
        "customer_id": [1, 2],
        "Surname": ["Hargrave", "Hill"],
        "FirstName": ["Ann", "Bo"],
        "mobile": ["+420 123", "+420 456"],
        "E-mail": ["a@x.cz", "b@x.cz"],
        "id_number": ["X1", "X2"],
        "home address": ["Main St 1", "Main St 2"],
        "客户姓名": ["张三", "李四"],
        "mobile_banking_since": pd.to_datetime(["2020-01-01", None]),
        "product_name": ["fund", "loan"],
        "balance": [1.0, 2.0],
    })
    before = frame.copy()
    kept, dropped = drop_direct_identifiers(frame)
    assert set(dropped) == {"Surname", "FirstName", "mobile", "E-mail", "id_number", "home address", "客户姓名"}
    assert list(kept.columns) == ["customer_id", "mobile_banking_since", "product_name", "balance"]
    pd.testing.assert_frame_equal(frame, before)  # the input is untouched


def test_keep_spares_a_checked_false_positive():
    frame = pd.DataFrame({"name": ["fund A", "fund B"], "x": [1, 2]})
    kept, dropped = drop_direct_identifiers(frame, keep=["name"])
    assert dropped == [] and list(kept.columns) == ["name", "x"]


# ------------------------------------------------------------- artifacts, stores and the key (issue 15 items 3-4)
@pytest.mark.slow
def test_no_registered_model_carries_a_customer_row_as_its_input_example(trained_bank):
    import json
    from pathlib import Path

    import mlflow

    from bankseg.models.registry import MODEL_NAMES, load_model

    trained_bank.configure()
    versions = {**trained_bank.train_versions, "segmenter": trained_bank.segmenter_version}
    for model, name in MODEL_NAMES.items():
        folder = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{versions[model]}"))
        example = folder / "input_example.json"
        if model == "segmenter":  # logs no example at all
            assert not example.exists()
            continue
        record = json.loads(example.read_text())
        columns = record["columns"]
        assert "customer_id" not in columns and len(columns) > 5, model
        # every cell masked: JSON null (text) or NaN (numbers), so no customer's id or value is in the file
        values = [value for row in record["data"] for value in row]
        assert values and all(value is None or (isinstance(value, float) and np.isnan(value)) for value in values), model
        # still a usable example: the model's schema takes it and predicts on it
        pyfunc = load_model(name, "champion")
        assert pyfunc.metadata.get_input_schema().input_names() == columns
        assert len(pyfunc.predict(pd.DataFrame(record["data"], columns=columns))) == len(record["data"])


@pytest.mark.slow
def test_the_store_and_a_scoring_run_are_private_to_the_user(trained_bank, tmp_path):
    from bankseg.scoring.score import run_score

    mlruns = trained_bank.root / "mlruns"
    assert mlruns.stat().st_mode & 0o777 == 0o700
    assert (mlruns / "mlflow.db").stat().st_mode & 0o777 == 0o600
    assert (mlruns / "artifacts").stat().st_mode & 0o777 == 0o700
    trained_bank.configure()
    result = run_score(
        as_of="2025-03-01", out_dir=tmp_path / "scores", mlflow_cfg=trained_bank.mlflow_cfg, config={"job": "score"},
        data_path=trained_bank.data_path, feature_kwargs=trained_bank.feature_kwargs, progress=False,
    )
    assert result.run_dir.stat().st_mode & 0o777 == 0o700  # its segments carry the bank's customer ids
    for path in result.run_dir.rglob("*"):
        assert path.stat().st_mode & 0o077 == 0, path


@pytest.mark.slow
def test_a_short_pseudonym_key_registers_and_exports_nothing(trained_bank, monkeypatch):
    import mlflow
    from conftest import compose_config

    from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
    from bankseg.jobs.export import run_export
    from bankseg.jobs.train import run_train
    from bankseg.models.registry import CHURN_MODEL, SEGMENTER_MODEL, find_version

    trained_bank.configure()
    client = mlflow.MlflowClient()

    def state(name):
        versions = client.search_model_versions(f"name = '{name}'")
        return sorted(v.version for v in versions), find_version(name, "champion").version

    before = {name: state(name) for name in (CHURN_MODEL, SEGMENTER_MODEL)}
    n_runs = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    monkeypatch.setenv(KEY_ENV, "too-short")
    common = [f"data.path={trained_bank.data_path}", f"mlflow.tracking_uri={trained_bank.mlflow_cfg['tracking_uri']}",
              f"paths.root_dir={trained_bank.root}"]
    cfg = compose_config("train", [*common, "model=churn", "model.params.num_threads=1"])
    with pytest.raises(ValueError, match=f"{KEY_ENV} must give 16 to 64 bytes"):
        run_train(model_cfg=plain(cfg.model), data_cfg=plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
                  label_settings=label_settings_from(cfg), as_of_cfg=plain(cfg.as_of), mlflow_cfg=plain(cfg.mlflow),
                  config=plain(cfg), register=True, use_ground_truth=False)
    cfg = compose_config("export", common)
    with pytest.raises(ValueError, match=f"{KEY_ENV} must give 16 to 64 bytes"):
        run_export(data_path=cfg.data.path, feature_kwargs=feature_kwargs_from(cfg), segments_cfg=plain(cfg.segments),
                   model_cfgs=plain(cfg.models), mlflow_cfg=plain(cfg.mlflow), config=plain(cfg))
    assert {name: state(name) for name in before} == before
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == n_runs


@pytest.mark.slow
def test_a_training_run_whose_report_fails_leaves_nothing_registered(trained_bank, monkeypatch):
    import mlflow
    from conftest import compose_config

    from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
    from bankseg.jobs import report as report_job
    from bankseg.jobs.train import run_train
    from bankseg.models.registry import CHURN_MODEL

    def fails(**_kwargs):
        raise RuntimeError("planted report failure")

    monkeypatch.setattr(report_job, "run_model_report", fails)
    trained_bank.configure()
    client = mlflow.MlflowClient()
    before = sorted(v.version for v in client.search_model_versions(f"name = '{CHURN_MODEL}'"))
    aliases = client.get_registered_model(CHURN_MODEL).aliases
    n_runs = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    cfg = compose_config("train", [f"data.path={trained_bank.data_path}", "model=churn", "model.params.num_threads=1",
                                   f"mlflow.tracking_uri={trained_bank.mlflow_cfg['tracking_uri']}",
                                   f"paths.root_dir={trained_bank.root}"])
    with pytest.raises(RuntimeError, match="planted report failure"):
        run_train(model_cfg=plain(cfg.model), data_cfg=plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
                  label_settings=label_settings_from(cfg), as_of_cfg=plain(cfg.as_of), mlflow_cfg=plain(cfg.mlflow),
                  config=plain(cfg), register=True, use_ground_truth=False,
                  report={"settings": None, "out_dir": trained_bank.root / "reports"})
    assert sorted(v.version for v in client.search_model_versions(f"name = '{CHURN_MODEL}'")) == before
    assert client.get_registered_model(CHURN_MODEL).aliases == aliases  # challenger back where it was
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list", order_by=["start_time DESC"])
    assert len(runs) == n_runs + 1
    assert runs[0].info.status == "FAILED" and "withdrawn" in runs[0].data.tags["bankseg.failure"]

"""The model jobs as a data scientist runs them: train, tune, promote, multirun, from their Hydra configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from scipy.optimize import linear_sum_assignment

from bankseg.cli import CONFIG_DIR
from bankseg.data.simulate import SimulatorParams, write_simulated_bank
from bankseg.models.oot_split import plan_as_of_dates, resolve_as_of_plan
from bankseg.models.registry import find_version, load_model

BIN = Path(sys.executable).parent
FAST_MODEL = ["model.params.num_threads=1", "build_report=false"]


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    """A small simulated bank: 1,500 customers over 30 months (enough for 3 training dates and an OOT date)."""
    out = tmp_path_factory.mktemp("bank") / "simulated"
    write_simulated_bank(SimulatorParams(n_customers=1500, n_months=30, seed=11), out, progress=False)
    return out


def _point_mlflow_at(uri: str | None) -> None:
    """Tracking and registry both, for this process only.

    MLflow's setters also export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which the console scripts started by
    later tests would inherit (and register into the wrong store).
    """
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri or "")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


@pytest.fixture
def store(tmp_path) -> str:
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    yield uri
    _point_mlflow_at(None)


def _cfg(job: str, bank: Path, store: str, root: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name=job,
            overrides=[f"data.path={bank}", f"mlflow.tracking_uri={store}", f"paths.root_dir={root}", *overrides],
        )


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


# ------------------------------------------------------------------------------------------ as_of planning
def test_oot_date_is_later_than_every_training_label_window():
    plan = plan_as_of_dates("2023-01-01", "2025-06-01", horizon_months=6, history_months=12, n_train=4)
    assert plan.oot == pd.Timestamp("2025-01-01")  # its 6-month window ends with the data (June 2025)
    assert plan.train == tuple(pd.Timestamp(d) for d in ("2024-01-01", "2024-04-01", "2024-07-01"))
    assert all(t + pd.DateOffset(months=6) <= plan.oot for t in plan.train)


def test_configured_oot_overlapping_training_labels_is_refused():
    with pytest.raises(ValueError, match="overlaps the label window of training as_of 2024-07-01"):
        resolve_as_of_plan(["2024-04-01", "2024-07-01"], "2024-10-01", None, None, horizon_months=6)


def test_data_too_short_for_history_and_two_label_windows_is_refused():
    with pytest.raises(ValueError, match="too short"):
        plan_as_of_dates("2024-01-01", "2024-12-01", horizon_months=6, history_months=12)


# ---------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_train_churn_logs_split_metrics_and_registers_the_first_model_as_champion(bank, store, tmp_path):
    from bankseg.cli import train

    oot_auc = train.main(_cfg("train", bank, store, tmp_path, "model=churn", "model.params.num_threads=1"))

    client = mlflow.MlflowClient(tracking_uri=store)
    champion = find_version("bankseg-churn", "champion")
    assert champion is not None and str(champion.version) == "1"
    assert str(find_version("bankseg-churn", "challenger").version) == "1"
    run = client.get_run(champion.run_id)
    metrics = run.data.metrics
    for name in ("train/auc", "val/auc", "oot/auc", "oot/ks", "oot/gini", "oot/lift_10", "oot/brier", "oot/psi_score"):
        assert name in metrics, name
    assert metrics["oot/auc"] == pytest.approx(oot_auc)
    # the churn process is learnable out of time, and the label's upper bound is reported beside it, on the same
    # rows: a model beating its bound beyond the paired DeLong interval would be a leak (issue 12)
    assert metrics["oot/auc"] > 0.7
    assert 0.5 < metrics["oot/bound_auc"] <= 1.0
    assert metrics["oot/auc_vs_bound"] == pytest.approx(metrics["oot/auc"] / metrics["oot/bound_auc"])
    assert metrics["oot/auc_minus_bound_low_95"] <= 0.0, metrics["oot/auc_minus_bound"]
    assert "oot/auc_not_started" in metrics and "oot/auc_churn_start" in metrics
    assert run.data.params["data_fingerprint"]
    assert run.data.params["model.target"] == "label_churn"
    # training also builds the model review report, on disk and in the run
    assert (tmp_path / "reports" / "churn" / "model_report.html").stat().st_size > 10_000
    assert any(a.path.startswith("reports") for a in client.list_artifacts(champion.run_id))

    # the registered model scores the feature table by alias, refusing a table without its columns
    model = load_model("bankseg-churn", "champion")
    columns = model.metadata.get_input_schema().input_names()
    assert "bal_aum_adb_3m" in columns and "customer_id" not in columns
    with pytest.raises(Exception, match="bal_aum_adb_3m"):
        model.predict(pd.DataFrame({"cust_age": [40.0]}))


@pytest.mark.slow
def test_promote_keeps_the_champion_when_the_challenger_is_worse(bank, store, tmp_path):
    from bankseg.cli import promote, train

    train.main(_cfg("train", bank, store, tmp_path, "model=churn", *FAST_MODEL))
    # a crippled challenger: two-leaf stumps, a handful of rounds, no calibration
    weak = ["model.params.num_leaves=2", "model.params.learning_rate=0.01", "model.num_boost_round=3",
            "model.early_stopping_rounds=1", "model.calibration=null", "+model.features=[cust_age]"]
    train.main(_cfg("train", bank, store, tmp_path, "model=churn", *FAST_MODEL, *weak))
    assert str(find_version("bankseg-churn", "challenger").version) == "2"

    promote.main(_cfg("promote", bank, store, tmp_path, "model=churn"))
    assert str(find_version("bankseg-churn", "champion").version) == "1"
    run = mlflow.MlflowClient(tracking_uri=store).search_runs(
        [mlflow.get_experiment_by_name("bankseg").experiment_id], "tags.`bankseg.job` = 'promote'"
    )[0]
    assert run.data.metrics["promotion/promoted"] == 0.0
    assert run.data.metrics["promotion/champion_oot_auc"] > run.data.metrics["promotion/challenger_oot_auc"]


@pytest.mark.slow
def test_persona_ids_stay_stable_when_retrained_on_a_resample(bank, store, tmp_path):
    from bankseg.cli import train

    small = ["model.k_range=[4,6]", "model.n_bootstrap=2", "model.n_init=2", "build_report=false"]
    train.main(_cfg("train", bank, store, tmp_path, "model=personas", *small))
    # retrain on another sample of the population: ids are matched to the champion's centroids
    train.main(_cfg("train", bank, store, tmp_path, "model=personas", *small, "model.random_state=5"))

    from bankseg.features.build import build_feature_table
    from bankseg.models.pyfunc import predict_frame

    frame = build_feature_table(bank, "2025-01-01")
    first = predict_frame(mlflow.pyfunc.load_model("models:/bankseg-personas/1"), frame)["persona_id"]
    second = predict_frame(mlflow.pyfunc.load_model("models:/bankseg-personas/2"), frame)["persona_id"]
    agreement = (first.to_numpy() == second.to_numpy()).mean()
    # ids follow the clusters: no relabelling of the second model's personas agrees better with the first
    overlap = pd.crosstab(first, second).to_numpy()
    rows, cols = linear_sum_assignment(-overlap)
    best_relabelling = overlap[rows, cols].sum() / len(first)
    assert agreement >= best_relabelling - 0.01
    assert agreement > 0.5
    metrics = mlflow.MlflowClient(tracking_uri=store).get_run(find_version("bankseg-personas", "challenger").run_id).data.metrics
    assert 0.0 <= metrics["train/stability_ari"] <= 1.0
    assert "train/ari_vs_planted" in metrics


# ------------------------------------------------------------------------------------- console scripts
@pytest.mark.slow
def test_tune_writes_an_experiment_that_train_can_use(bank, tmp_path):
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    common = [f"data.path={bank}", f"mlflow.tracking_uri={store}", f"paths.root_dir={tmp_path}", *FAST_MODEL]
    _run_cli(
        [BIN / "bankseg-tune", "model=churn", "hpo.n_trials=4", "hpo.pruner.n_startup_trials=1",
         f"hpo.experiment_dir={tmp_path}/conf/experiment", *common],
        cwd=tmp_path,
    )
    written = tmp_path / "conf" / "experiment" / "tuned_churn.yaml"
    assert written.read_text().startswith("# @package _global_")

    _point_mlflow_at(store)
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("bankseg").experiment_id
    (parent,) = client.search_runs([experiment], "tags.`bankseg.job` = 'tune'")
    trials = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(trials) == 4
    assert {t.data.tags["optuna.state"] for t in trials} <= {"complete", "pruned"}
    best = {k.removeprefix("best."): v for k, v in parent.data.params.items() if k.startswith("best.")}
    assert set(best) == {"learning_rate", "num_leaves", "min_data_in_leaf", "feature_fraction",
                         "bagging_fraction", "lambda_l2", "max_depth"}

    _run_cli(
        [BIN / "bankseg-train", "model=churn", "+experiment=tuned_churn",
         f"hydra.searchpath=[file://{tmp_path}/conf]", *common],
        cwd=tmp_path,
    )
    trained = client.get_run(find_version("bankseg-churn", "challenger").run_id)
    assert trained.data.params["model.params.num_leaves"] == best["num_leaves"]
    _point_mlflow_at(None)


@pytest.mark.slow
def test_multirun_trains_all_three_propensity_models(bank, tmp_path):
    store = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    _run_cli(
        [BIN / "bankseg-train", "-m", "model=churn,conversion,upgrade", f"data.path={bank}",
         f"mlflow.tracking_uri={store}", f"paths.root_dir={tmp_path}", *FAST_MODEL],
        cwd=tmp_path,
    )
    _point_mlflow_at(store)
    for name in ("bankseg-churn", "bankseg-conversion", "bankseg-upgrade"):
        assert find_version(name, "champion") is not None, name
    _point_mlflow_at(None)


def test_help_tells_a_newcomer_what_to_set():
    done = _run_cli([BIN / "bankseg-train", "--help"], cwd=Path.cwd())
    assert "model=personas|churn|conversion|upgrade" in done.stdout
    assert "+experiment=" in done.stdout
    groups = done.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    for group in ("model: churn, conversion, personas", "data:", "mlflow:"):
        assert group in groups, group

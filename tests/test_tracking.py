"""Tracking: every job run records its config, commit, data fingerprint and split/metric names in MLflow.

All MLflow state lives in a temporary SQLite store; the project's mlruns/ is never touched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from bankseg.models import tracking


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per module (creating its tables takes seconds); tests use their own experiments."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns')}/mlflow.db"


@pytest.fixture
def experiment_id(store_uri: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    # MLflow mirrors its settings into these variables; monkeypatch puts the originals back afterwards.
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    yield tracking.configure_tracking(store_uri, experiment_name=request.node.name)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None


CONFIG = {
    "model": {"name": "churn", "params": {"num_leaves": 31, "learning_rate": 0.05}},
    "as_of": ["2024-03-31", "2024-06-30"],
    "features": {"windows": [1, 3, 6, 12], "blocks": {}},
    "notes": "x" * (MAX_PARAM_VAL_LENGTH + 500),
    "seed": None,
    "grid": {f"p{i}": i for i in range(150)},  # more params than MLflow takes in one batch (100)
}


def test_store_defaults_to_artifacts_beside_the_sqlite_file(store_uri: str, experiment_id: str) -> None:
    experiment = mlflow.get_experiment(experiment_id)
    db_dir = Path(store_uri.removeprefix("sqlite:///")).parent
    assert experiment.artifact_location == (db_dir / "artifacts").as_uri()
    assert mlflow.get_tracking_uri() == store_uri
    assert mlflow.get_registry_uri() == store_uri


def test_configure_is_idempotent_and_refuses_a_deleted_experiment(store_uri: str, experiment_id: str) -> None:
    assert tracking.configure_tracking(store_uri, mlflow.get_experiment(experiment_id).name) == experiment_id
    gone = tracking.configure_tracking(store_uri, "to-delete")
    mlflow.delete_experiment(gone)
    with pytest.raises(ValueError, match=r"'to-delete' .* is deleted"):
        tracking.configure_tracking(store_uri, "to-delete")


def test_explicit_artifact_location_is_used_for_a_new_experiment(
    store_uri: str, experiment_id: str, tmp_path: Path
) -> None:
    exp_id = tracking.configure_tracking(
        store_uri, "explicit-artifacts", artifact_location=str(tmp_path / "a")
    )
    assert mlflow.get_experiment(exp_id).artifact_location == (tmp_path / "a").as_uri()


def test_flatten_params_nests_with_dots_and_stringifies_lists() -> None:
    flat = tracking.flatten_params(CONFIG)
    assert flat["model.params.num_leaves"] == "31"
    assert flat["as_of"] == '["2024-03-31", "2024-06-30"]'
    assert flat["features.windows"] == "[1, 3, 6, 12]"
    assert flat["features.blocks"] == "{}"
    assert flat["seed"] == "None"
    assert len(flat["notes"]) == MAX_PARAM_VAL_LENGTH
    assert flat["notes"].endswith(tracking.TRUNCATION_MARK)


def test_job_run_records_config_commit_fingerprint_and_job(experiment_id: str, tmp_path: Path) -> None:
    with tracking.start_job_run(
        "train", CONFIG, data_fingerprint="sha256:abc123", tags={"model": "churn"}
    ) as run:
        logged = tracking.log_metrics_by_split({"train": {"auc": 0.81, "ks": 0.4}, "oot": {"auc": 0.78}})
    assert logged == {"train/auc": 0.81, "train/ks": 0.4, "oot/auc": 0.78}

    finished = mlflow.get_run(run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.params["model.params.learning_rate"] == "0.05"
    assert finished.data.params[tracking.PARAM_DATA_FINGERPRINT] == "sha256:abc123"
    assert finished.data.params["grid.p149"] == "149"
    assert finished.data.metrics == {"train/auc": 0.81, "train/ks": 0.4, "oot/auc": 0.78}
    tags = finished.data.tags
    assert tags[tracking.TAG_JOB] == "train"
    assert tags[tracking.TAG_DATA_FINGERPRINT] == "sha256:abc123"
    assert tags["model"] == "churn"
    commit = tracking.git_commit()
    if commit is None:  # a source tree without commits: no git tags rather than wrong ones
        assert tracking.TAG_GIT_DIRTY not in tags
    else:
        assert tags[tracking.TAG_GIT_COMMIT] == commit
        assert tags[tracking.TAG_GIT_DIRTY] in ("true", "false")

    config_file = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path=tracking.CONFIG_ARTIFACT, dst_path=str(tmp_path)
    )
    assert yaml.safe_load(Path(config_file).read_text()) == CONFIG


def test_a_failing_job_leaves_a_failed_run(experiment_id: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with tracking.start_job_run("features", {"a": 1}, data_fingerprint=None) as run:
            raise RuntimeError("boom")
    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def test_nested_runs_are_children_of_the_job_run(experiment_id: str) -> None:
    with tracking.start_job_run("tune", {"hpo": {"n_trials": 2}}, data_fingerprint="fp") as parent:
        with tracking.start_job_run("trial", {"lr": 0.1}, data_fingerprint="fp", nested=True) as child:
            pass
    tags = mlflow.get_run(child.info.run_id).data.tags
    assert tags["mlflow.parentRunId"] == parent.info.run_id


def test_metric_names_with_a_slash_or_non_numbers_are_refused(experiment_id: str) -> None:
    with mlflow.start_run():
        with pytest.raises(ValueError, match=r"bad name 'oot'/'auc/x'.*val/ks is not a number"):
            tracking.log_metrics_by_split({"oot": {"auc/x": 0.5}, "val": {"ks": "high"}})


def test_log_frame_writes_a_readable_table(experiment_id: str, tmp_path: Path) -> None:
    frame = pd.DataFrame({"decile": [1, 2], "lift": [3.1, 1.9]})
    with mlflow.start_run() as run:
        tracking.log_frame(frame, "oot/deciles.csv")
        tracking.log_frame(frame, "oot/deciles.parquet")
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path)))
    pd.testing.assert_frame_equal(pd.read_csv(local / "oot" / "deciles.csv"), frame)
    pd.testing.assert_frame_equal(pd.read_parquet(local / "oot" / "deciles.parquet"), frame)


def test_git_commit_is_none_outside_a_checkout(tmp_path: Path) -> None:
    assert tracking.git_commit(tmp_path) is None
    assert tracking.git_dirty(tmp_path) is None


def test_git_commit_and_dirty_flag_in_a_checkout(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    assert tracking.git_commit(tmp_path) is None  # no commit yet
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("commit", "-q", "-m", "first")
    assert tracking.git_commit(tmp_path) == git("rev-parse", "HEAD")
    assert tracking.git_dirty(tmp_path) is False
    (tmp_path / "a.txt").write_text("2")
    assert tracking.git_dirty(tmp_path) is True

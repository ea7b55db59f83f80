"""The same tracking and registry code against a real ``mlflow server`` (train -> register -> load by alias).

The server runs from the venv's ``mlflow`` executable on a free loopback port, with a SQLite backend and
proxied artifacts in tmp_path, behind its basic-auth app (the jobs' client sends MLFLOW_TRACKING_USERNAME /
PASSWORD); it is always stopped, even when start-up fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from bankseg.models import registry, tracking
from bankseg.models.server import running_mlflow_server

pytestmark = pytest.mark.slow
ADMIN_PASSWORD = "admin-password-of-the-test"

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URL, folder holding the server's database and artifacts): `mlflow server` with a SQLite backend."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with running_mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", password=ADMIN_PASSWORD) as url:
        yield url, root


@pytest.fixture
def experiment_id(server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    yield tracking.configure_tracking(server[0], experiment_name="bankseg-server-test")
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None


def test_train_register_load_by_alias_against_a_server(server: tuple[str, Path], experiment_id: str) -> None:
    server_url, server_root = server
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 3)), columns=["x1", "x2", "x3"])
    y = (x["x1"] + 0.5 * rng.normal(size=200) > 0).astype(int).to_numpy()

    # train: a job run that logs its config, metrics and the model
    with tracking.start_job_run("train", {"model": {"name": "churn"}}, data_fingerprint="fp-server") as run:
        model = LogisticRegression().fit(x, y)
        tracking.log_metrics_by_split({"train": {"auc": 0.9}})
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict_proba(x)),
            input_example=x.head(3),
            pyfunc_predict_fn="predict_proba",
            pip_requirements=["scikit-learn"],
        )

    # register: first version is challenger and champion
    version = registry.register_model(info.model_uri, registry.CHURN_MODEL)
    assert set(version.aliases) == {"challenger", "champion"}

    # load by alias, through the server's registry and artifact proxy
    loaded = mlflow.pyfunc.load_model(f"models:/{registry.CHURN_MODEL}@champion")
    np.testing.assert_allclose(loaded.predict(x), model.predict_proba(x))
    assert registry.resolve_version(registry.CHURN_MODEL, "champion").version == version.version

    stored = mlflow.get_run(run.info.run_id)
    assert stored.data.metrics["train/auc"] == 0.9
    assert stored.data.params["model.name"] == "churn"
    assert mlflow.get_tracking_uri() == server_url
    # artifacts went through the server's proxy into its destination folder
    assert mlflow.get_experiment(experiment_id).artifact_location.startswith("mlflow-artifacts:")
    assert list((server_root / "artifacts").rglob("MLmodel"))
    assert list((server_root / "artifacts").rglob("config.yaml"))
    with pytest.raises(registry.AliasNotFoundError, match="no alias 'nope'"):
        registry.load_model(registry.CHURN_MODEL, alias="nope")

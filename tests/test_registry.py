"""Registry: aliases, the first model becoming champion, and promotion through the gate.

Models are tiny sklearn logistic regressions in a temporary SQLite store; the project's mlruns/ is never touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from bankseg.models import registry, tracking
from bankseg.models.metrics import roc_auc

GATE = registry.PromotionGate(metric="oot/auc", min_gain=0.002, higher_is_better=True)


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store per module (creating its tables takes seconds); tests use their own model names."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlruns')}/mlflow.db"


@pytest.fixture(autouse=True)
def store(store_uri: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    # MLflow mirrors its settings into these variables; monkeypatch puts the originals back afterwards.
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    tracking.configure_tracking(store_uri, experiment_name=request.node.name)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """A training set and an out-of-time set where x1 carries the signal."""
    rng = np.random.default_rng(0)

    def draw(n: int) -> tuple[pd.DataFrame, np.ndarray]:
        x = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x1", "x2", "x3"])
        y = (x["x1"] + 0.5 * rng.normal(size=n) > 0).astype(int).to_numpy()
        return x, y

    return {"train": draw(300), "oot": draw(300)}


def log_model(data: dict, informative: bool) -> str:
    """Fit and log a logistic regression (a useless one when not informative); return its model URI."""
    x, y = data["train"]
    target = y if informative else np.random.default_rng(1).permutation(y)
    model = LogisticRegression().fit(x, target)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x, model.predict_proba(x)),
            input_example=x.head(3),
            pyfunc_predict_fn="predict_proba",
            pip_requirements=["scikit-learn"],  # skips MLflow's slow requirement inference
        )
    return info.model_uri


def oot_auc(data: dict) -> Callable[[str], float]:
    x, y = data["oot"]
    return lambda uri: roc_auc(y, np.asarray(mlflow.pyfunc.load_model(uri).predict(x))[:, 1])


def test_registered_names_follow_the_model_choice() -> None:
    assert registry.registered_name("churn") == "bankseg-churn"
    assert registry.registered_name("segmenter") == "bankseg-segmenter"
    with pytest.raises(ValueError, match="unknown model 'spam'"):
        registry.registered_name("spam")


def test_first_version_becomes_champion_later_ones_challenger(data: dict) -> None:
    name = "bankseg-conversion"
    first = registry.register_model(log_model(data, True), name, tags={"oot/auc": "0.9"})
    assert set(first.aliases) == {"challenger", "champion"}
    assert first.tags["oot/auc"] == "0.9"
    second = registry.register_model(log_model(data, True), name)
    assert second.aliases == ["challenger"]
    assert registry.resolve_version(name, "champion").version == first.version
    assert registry.resolve_version(name, "challenger").version == second.version


def test_champion_loads_by_alias_uri(data: dict) -> None:
    registry.register_model(log_model(data, True), "bankseg-churn")
    x, _ = data["oot"]
    by_uri = mlflow.pyfunc.load_model("models:/bankseg-churn@champion")
    by_helper = registry.load_model("bankseg-churn")
    np.testing.assert_allclose(by_uri.predict(x), by_helper.predict(x))
    assert np.asarray(by_uri.predict(x)).shape == (len(x), 2)


def test_missing_alias_or_model_gives_a_clear_error(data: dict) -> None:
    registry.register_model(log_model(data, True), "bankseg-upgrade", alias=None, champion_if_none=False)
    with pytest.raises(registry.AliasNotFoundError, match="'bankseg-upgrade' has no alias 'champion'"):
        registry.load_model("bankseg-upgrade")
    with pytest.raises(ValueError, match="no registered model 'bankseg-nothing'"):
        registry.resolve_version("bankseg-nothing", "champion")


def test_promotion_refuses_a_worse_challenger(data: dict, tmp_path: Path) -> None:
    name = "bankseg-refuse"
    good = registry.register_model(log_model(data, True), name)
    worse = registry.register_model(log_model(data, False), name)
    decision = registry.promote(name, oot_auc(data), GATE)

    assert not decision.promoted
    assert (decision.challenger_version, decision.champion_version) == (str(worse.version), str(good.version))
    assert decision.challenger_score < decision.champion_score
    assert registry.resolve_version(name, "champion").version == good.version
    # the comparison is logged: run metrics, the decision, and tags on the challenger version
    run = mlflow.get_run(decision.run_id)
    assert run.data.metrics["promotion/challenger_oot_auc"] == pytest.approx(decision.challenger_score)
    assert run.data.metrics["promotion/champion_oot_auc"] == pytest.approx(decision.champion_score)
    assert run.data.metrics["promotion/promoted"] == 0.0
    assert run.data.tags["promotion.decision"] == "refused"
    record = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=decision.run_id, artifact_path="promotion.json", dst_path=str(tmp_path)
            )
        ).read_text()
    )
    assert record["champion"]["version"] == str(good.version)
    tags = mlflow.MlflowClient().get_model_version(name, worse.version).tags
    assert tags["promotion.decision"] == "refused"
    assert tags["promotion.champion_version"] == str(good.version)


def test_promotion_accepts_a_better_challenger(data: dict) -> None:
    name = "bankseg-accept"
    weak = registry.register_model(log_model(data, False), name)
    better = registry.register_model(log_model(data, True), name)
    decision = registry.promote(name, oot_auc(data), GATE)

    assert decision.promoted
    assert decision.challenger_score > decision.champion_score + GATE.min_gain
    assert registry.resolve_version(name, "champion").version == better.version
    client = mlflow.MlflowClient()
    assert client.get_model_version(name, weak.version).tags["promotion.replaced_by"] == str(better.version)
    assert mlflow.get_run(decision.run_id).data.metrics["promotion/promoted"] == 1.0


def test_gate_needs_the_minimum_gain_in_the_stated_direction(data: dict) -> None:
    name = "bankseg-gate"
    uri = log_model(data, True)
    registry.register_model(uri, name)
    registry.register_model(uri, name)  # v1 champion, v2 challenger; scores below are made up per version
    scores = {"1": 0.800, "2": 0.801}
    evaluate = lambda version_uri: scores[version_uri.rsplit("/", 1)[1]]  # noqa: E731

    assert not registry.promote(name, evaluate, GATE).promoted  # +0.001 < min_gain 0.002
    brier_gate = registry.PromotionGate(metric="oot/brier", min_gain=0.0, higher_is_better=False)
    assert not registry.promote(name, evaluate, brier_gate).promoted  # higher Brier is worse
    scores["2"] = 0.79
    decision = registry.promote(name, evaluate, brier_gate)
    assert decision.promoted
    assert "gain +0.01" in decision.reason


def test_promote_makes_the_challenger_champion_when_there_is_none(data: dict) -> None:
    name = "bankseg-first"
    only = registry.register_model(log_model(data, True), name, champion_if_none=False)
    assert registry.find_version(name, "champion") is None
    decision = registry.promote(name, oot_auc(data), GATE)
    assert decision.promoted and decision.champion_version is None
    assert registry.resolve_version(name, "champion").version == only.version


def test_promote_logs_into_the_job_run_when_one_is_active(data: dict) -> None:
    name = "bankseg-in-job"
    registry.register_model(log_model(data, True), name)
    registry.register_model(log_model(data, False), name)
    config = {"model": "churn", "promotion": {"metric": "oot/auc", "min_gain": 0, "higher_is_better": True}}
    with tracking.start_job_run("promote", config, data_fingerprint="fp") as run:
        decision = registry.promote(name, oot_auc(data), GATE)
    assert decision.run_id == run.info.run_id
    logged = mlflow.get_run(run.info.run_id).data
    assert "promotion/gain" in logged.metrics
    assert logged.params["promotion.min_gain"] == "0"  # the job's config, untouched by the comparison
    assert logged.params["promotion.gate_min_gain"] == "0.002"


def test_gate_refuses_a_negative_minimum_gain() -> None:
    with pytest.raises(ValueError, match="min_gain must be a finite number >= 0"):
        registry.PromotionGate(metric="oot/auc", min_gain=-0.01)

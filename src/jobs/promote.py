"""Promote a model's challenger to champion when it beats the champion on the same out-of-time data.

Both versions are loaded from the registry and scored by one function on one frame: the OOT as_of of the current
data (planned as in training). Propensity models are compared on OOT ROC AUC; persona models on the silhouette of
their own assignment of the OOT customers (in the challenger's scaled space, on a seeded sample) — both
"higher is better". The gate (metric, minimum gain) is conf/promotion/default.yaml.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from bankseg.features.labels import LabelSettings
from bankseg.jobs.train import load_model_data
from bankseg.models import metrics as m
from bankseg.models.pyfunc import predict_frame, unwrap
from bankseg.models.registry import (
    CHALLENGER,
    PromotionDecision,
    PromotionGate,
    check_same_source,
    promote,
    resolve_version,
)
from bankseg.models.tracking import check_run_settings, configure_tracking, start_job_run

log = logging.getLogger(__name__)
SILHOUETTE_SAMPLE = 5000


def propensity_evaluator(frame: pd.DataFrame, target: str):
    """A function scoring a model version's OOT ROC AUC on ``frame`` (rows with a label)."""
    scored = frame[frame[target].notna()]
    y = scored[target].to_numpy(dtype=int)

    def evaluate(model_uri: str) -> float:
        probability = predict_frame(mlflow.pyfunc.load_model(model_uri), scored)["probability"].to_numpy()
        return m.roc_auc(y, probability)

    return evaluate


def persona_evaluator(frame: pd.DataFrame, seed: int = 0):
    """A function scoring a persona model version by the silhouette of its assignment on ``frame``."""
    from sklearn.metrics import silhouette_score

    sample = frame.sample(n=min(SILHOUETTE_SAMPLE, len(frame)), random_state=seed)

    def evaluate(model_uri: str) -> float:
        model = unwrap(mlflow.pyfunc.load_model(model_uri))
        ids = np.asarray(model.predict(sample))
        if np.unique(ids).size < 2:
            return -1.0
        return float(silhouette_score(model.transform(sample), ids, random_state=seed))

    return evaluate


def run_promote(
    *,
    model_cfg: dict[str, Any],
    gate: PromotionGate,
    data_cfg: dict[str, Any],
    feature_kwargs: dict[str, Any],
    label_settings: LabelSettings,
    as_of_cfg: dict[str, Any],
    mlflow_cfg: dict[str, Any],
    config: dict[str, Any],
    features_path: Path | None = None,
    holdout_fraction: float = 0.2,
) -> PromotionDecision:
    """Score challenger and champion of ``model_cfg['registered_name']`` on the OOT frame and apply ``gate``.

    Refused (ValueError) when the challenger was trained on another data source than ``data_cfg`` describes,
    or champion and challenger on different sources.
    """
    check_run_settings()  # a bad pseudonym key fails before any work, and before anything is registered
    configure_tracking(**mlflow_cfg)
    registered = model_cfg["registered_name"]
    challenger = resolve_version(registered, CHALLENGER)
    check_same_source({f"challenger v{challenger.version}": challenger}, expected=data_cfg.get("name"))
    # only the evaluation rows are needed: one training date keeps the feature build small
    data = load_model_data(
        data_cfg, feature_kwargs=feature_kwargs, label_settings=label_settings,
        as_of_cfg={**as_of_cfg, "n_train": 1}, features_path=features_path, holdout_fraction=holdout_fraction,
        validation=config.get("validation"),
    )
    oot = data.frame[data.frame["split"] == data.eval_split].drop(columns=["split"])
    if model_cfg["kind"] == "propensity":
        evaluate = propensity_evaluator(oot, model_cfg["target"])
    else:
        evaluate = persona_evaluator(oot)
        gate = replace(gate, metric="oot/silhouette")
    if data.eval_split != "oot":
        gate = replace(gate, metric=gate.metric.replace("oot/", f"{data.eval_split}/"))
    with start_job_run("promote", config, data.fingerprint, tags={"bankseg.model": model_cfg["name"]}):
        mlflow.log_dict(data.description, "data_split.json")
        data.log_validation()
        decision = promote(model_cfg["registered_name"], evaluate, gate)
    log.info("%s: %s", model_cfg["registered_name"], decision.reason)
    return decision

"""Tune a propensity model with Optuna: one parent MLflow run, each trial a nested run, pruning on LightGBM's
per-iteration validation metric.

Optuna is called directly (Hydra's Optuna sweeper pins Optuna 2: STACK.md). Each trial's configuration is
composed by Hydra from the job's own config plus ``model.params.<name>=<value>`` overrides, through the
``compose`` callable the entry point passes in, so a trial is exactly what ``bankseg-train`` with those
overrides would train. Tuning only sees the training as_of dates; the out-of-time rows stay untouched for the
final model's evaluation. The best trial's params are written as ``<hpo.experiment_dir>/<name>.yaml``
(``# @package _global_``; the user's ``$BANKSEG_CONFIG_DIR/experiment``), usable as
``bankseg-train data=<d> model=<m> +experiment=<name>``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd
import yaml

from bankseg.features.labels import LabelSettings
from bankseg.jobs.train import estimator_kwargs, load_model_data
from bankseg.models.tracking import configure_tracking, log_metrics_by_split, start_job_run

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    """The study's outcome: best value and params, trial counts, where the experiment file went."""

    best_value: float
    best_params: dict[str, Any]
    n_complete: int
    n_pruned: int
    seconds: float
    experiment_file: Path | None
    run_id: str

    def render(self) -> str:
        lines = [
            f"best value {self.best_value:.4f} after {self.n_complete} complete and {self.n_pruned} pruned trials "
            f"({self.seconds:.0f} s); MLflow parent run {self.run_id}",
            *(f"  {k} = {v}" for k, v in sorted(self.best_params.items())),
        ]
        if self.experiment_file is not None:
            lines.append(f"written {self.experiment_file} (use +experiment={self.experiment_file.stem})")
        return "\n".join(lines)


def suggest(trial: optuna.Trial, search_space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Draw one value per parameter of ``search_space`` (conf/hpo/*.yaml) from the trial."""
    params: dict[str, Any] = {}
    for name, spec in search_space.items():
        kind = spec["type"]
        if kind == "float":
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "int":
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False))
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(spec["choices"]))
        else:
            raise ValueError(f"search space {name}: type must be float, int or categorical, got {kind!r}")
    return params


def make_pruner(pruner_cfg: dict[str, Any]) -> optuna.pruners.BasePruner:
    """The configured pruner: ``median`` (MedianPruner) or ``none``."""
    kind = pruner_cfg.get("kind", "median")
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner_cfg.get("n_startup_trials", 5),
            n_warmup_steps=pruner_cfg.get("n_warmup_steps", 30),
            interval_steps=pruner_cfg.get("interval_steps", 10),
        )
    raise ValueError(f"hpo.pruner.kind must be 'median' or 'none', got {kind!r}")


def create_study(hpo_cfg: dict[str, Any]) -> optuna.Study:
    """An in-memory study with the configured direction, seeded TPE sampler and pruner."""
    return optuna.create_study(
        direction=hpo_cfg.get("direction", "maximize"),
        sampler=optuna.samplers.TPESampler(seed=hpo_cfg.get("seed", 0)),
        pruner=make_pruner(hpo_cfg.get("pruner", {})),
    )


def score_trial(
    train: pd.DataFrame, trial_model: dict[str, Any], trial: optuna.Trial, *, metric: str = "auc",
    cv_folds: int | None = None,
) -> tuple[float, int]:
    """(score, rounds) of the model config ``trial_model`` on ``train``: what one trial returns.

    ``cv_folds`` null: the val-split metric at the round early stopping chose, as ``fit`` sees it. An integer:
    the best mean metric of ``cv_folds`` stratified folds (:meth:`PropensityModel.cross_validate`), steadier on
    small data, where one val split is noisy enough for the search to chase its noise. Either way the trial's
    LightGBM metric is reported to the study's pruner each round (``optuna.TrialPruned`` propagates). A trial
    never refits or calibrates: neither changes the score it returns.
    """
    from bankseg.models.propensity import PropensityModel, make_pruning_callback

    kwargs = {**estimator_kwargs(PropensityModel, trial_model), "refit_on_val": False, "calibration": None}
    estimator = PropensityModel(**kwargs)
    if cv_folds:
        measured = estimator.cross_validate(
            train, n_folds=int(cv_folds), callbacks=[make_pruning_callback(trial, metric=metric, valid_name="valid")]
        )
        return measured.score, measured.rounds
    estimator.fit(train, callbacks=[make_pruning_callback(trial, metric=metric, valid_name="val")])
    return float(estimator.evals_result_["val"][metric][estimator.best_iteration_ - 1]), estimator.best_iteration_


def write_experiment(path: Path, model_name: str, params: dict[str, Any], note: str, data_name: str) -> Path:
    """Write a Hydra experiment file pinning ``model.params`` to ``params`` (tuned on the data ``data_name``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump({"model": {"params": params}}, sort_keys=True)
    usage = f"bankseg-train data={data_name} model={model_name} +experiment={path.stem}"
    path.write_text(f"# @package _global_\n# {note}\n# Use: {usage}\n{body}")
    return path


def run_tune(
    *,
    model_cfg: dict[str, Any],
    hpo_cfg: dict[str, Any],
    data_cfg: dict[str, Any],
    feature_kwargs: dict[str, Any],
    label_settings: LabelSettings,
    as_of_cfg: dict[str, Any],
    mlflow_cfg: dict[str, Any],
    config: dict[str, Any],
    compose: Callable[[list[str]], dict[str, Any]],
    write_experiment_file: bool = True,
    features_path: Path | None = None,
) -> TuneResult:
    """Run the Optuna study for the propensity model in ``model_cfg``; see the module docstring."""
    if model_cfg.get("kind") != "propensity":
        raise ValueError(f"bankseg-tune tunes propensity models; model={model_cfg.get('name')} is {model_cfg.get('kind')}")
    configure_tracking(**mlflow_cfg)
    data = load_model_data(
        data_cfg, feature_kwargs=feature_kwargs, label_settings=label_settings, as_of_cfg=as_of_cfg,
        features_path=features_path, validation=config.get("validation"),
    )
    # tuning sees the training rows only; the evaluation rows stay untouched for the final model
    train = data.frame[data.frame["split"] == "train"].drop(columns=["split"])
    metric = hpo_cfg.get("metric", "val/auc").split("/")[-1]
    cv_folds = hpo_cfg.get("cv_folds")
    split = "cv" if cv_folds else "val"
    study = create_study(hpo_cfg)
    fingerprint = data.fingerprint

    def objective(trial: optuna.Trial) -> float:
        drawn = suggest(trial, hpo_cfg["search_space"])
        trial_cfg = compose([f"model.params.{k}={v}" for k, v in drawn.items()])
        trial_model = trial_cfg["model"]
        with start_job_run(
            "tune-trial", trial_cfg, fingerprint, nested=True, run_name=f"trial-{trial.number:03d}",
            tags={"bankseg.model": model_cfg["name"], "optuna.trial": str(trial.number)},
        ):
            try:
                value, rounds = score_trial(train, trial_model, trial, metric=metric, cv_folds=cv_folds)
            except optuna.TrialPruned:
                mlflow.set_tag("optuna.state", "pruned")
                value = None
            else:
                mlflow.set_tag("optuna.state", "complete")
                log_metrics_by_split({split: {metric: value, "best_iteration": rounds}})
        if value is None:
            raise optuna.TrialPruned()
        return value

    started = time.perf_counter()
    with start_job_run("tune", config, fingerprint, tags={"bankseg.model": model_cfg["name"]}) as parent:
        data.log_validation()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(
            objective, n_trials=hpo_cfg["n_trials"], timeout=hpo_cfg.get("timeout_s"), show_progress_bar=True
        )
        seconds = time.perf_counter() - started
        states = pd.Series([t.state.name for t in study.trials]).value_counts()
        n_complete, n_pruned = int(states.get("COMPLETE", 0)), int(states.get("PRUNED", 0))
        if n_complete == 0:
            raise RuntimeError(f"no trial completed ({n_pruned} pruned): widen the search space or the warm-up")
        mlflow.log_params({f"best.{k}": v for k, v in study.best_params.items()})
        log_metrics_by_split({
            "tune": {"best_" + metric: study.best_value, "n_complete": n_complete, "n_pruned": n_pruned,
                     "seconds": seconds},
        })
        experiment_file = None
        if write_experiment_file:
            note = (f"Written by bankseg-tune: best of {len(study.trials)} trials (seed {hpo_cfg.get('seed', 0)}), "
                    f"{split}/{metric} = {study.best_value:.4f}, MLflow run {parent.info.run_id}")
            experiment_file = write_experiment(
                Path(hpo_cfg["experiment_dir"]) / f"{hpo_cfg['experiment_name']}.yaml",
                model_cfg["name"], study.best_params, note, str(data_cfg.get("name", "synthetic")),
            )
            mlflow.log_artifact(str(experiment_file), "experiment")
        log.info("best %s/%s %.4f with %s (%d complete, %d pruned, %.0f s)",
                 split, metric, study.best_value, study.best_params, n_complete, n_pruned, seconds)
        return TuneResult(study.best_value, dict(study.best_params), n_complete, n_pruned, seconds,
                          experiment_file, parent.info.run_id)


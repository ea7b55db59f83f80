"""Train one model (personas or a propensity model), evaluate it out of time, log it and register it.

The training frame stacks several as_of dates (``split == "train"``) and one later out-of-time date
(``split == "oot"``); see :mod:`bankseg.models.oot_split`. Propensity models are fitted on the training rows
only (their own validation and calibration hold-outs come out of those) and judged on the OOT rows. On the
simulated bank the ground truth is read for *metrics only* (the label's upper bound, lead time, persona recovery);
it never reaches a model that is registered.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from bankseg.data.io import dataset_fingerprint, read_table, table_path
from bankseg.features.labels import ConversionScope, LabelSettings, check_out_of_time, mark_training_split
from bankseg.features.labels import build_training_frame as stack_training_frame
from bankseg.models import metrics as m
from bankseg.models.bound import label_bound, lead_time, persona_truth
from bankseg.models.oot_split import AsOfPlan, resolve_as_of_plan
from bankseg.models.pyfunc import (
    PersonaPyfunc,
    PropensityPyfunc,
    input_schema,
    masked_input_example,
    model_requirements,
    to_model_input,
)
from bankseg.models.registry import (
    PERSONAS_MODEL,
    TAG_DATA_SOURCE,
    register_model,
    registry_aliases,
    withdraw_version,
)
from bankseg.models.tracking import (
    check_run_settings,
    configure_tracking,
    log_frame,
    log_metrics_by_split,
    start_job_run,
)

log = logging.getLogger(__name__)

KEY_COLUMNS = ("customer_id", "as_of", "split")
# The label bound's privileged model learns from at most this many training rows (it is a metric, not a product).
BOUND_MAX_TRAIN_ROWS = 200_000
PSI_BINS = 10


@dataclass
class TrainResult:
    """What a training run produced: its metrics, the MLflow run and the registered version."""

    model_name: str
    run_id: str
    metrics: dict[str, float]
    registered_name: str | None = None
    version: str | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    report_path: Path | None = None

    def write(self, path: Path) -> Path:
        """A small JSON record of the run (the DVC pipeline's output of a training stage)."""
        record = {"model": self.model_name, "run_id": self.run_id, "registered_name": self.registered_name,
                  "version": self.version, "metrics": self.metrics}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
        return path

    def render(self) -> str:
        head = f"{self.model_name}: MLflow run {self.run_id}"
        if self.version is not None:
            head += f", registered {self.registered_name} version {self.version}"
        lines = [head, *(f"  {k:<28} {v:.4f}" for k, v in sorted(self.metrics.items()))]
        if self.report_path is not None:
            lines.append(f"model review report: {self.report_path}")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the data
def data_month_range(data_path: Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last month covered by the dataset's balances (the data's own period)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    path = table_path(Path(data_path), "balances")
    if path is None:
        raise ValueError(f"no balances table in {data_path}: cannot tell which months the data covers")
    months = ds.dataset(path, format="parquet").to_table(columns=["month"]).column("month")
    lo, hi = pc.min_max(months).values()
    return pd.Timestamp(lo.as_py()), pd.Timestamp(hi.as_py())


def build_training_frame(
    data_path: Path,
    plan: AsOfPlan,
    feature_kwargs: dict[str, Any],
    label_settings: LabelSettings,
    features_path: Path | None = None,
) -> pd.DataFrame:
    """Features and labels for every training as_of and the OOT as_of, with a ``split`` column.

    With ``features_path`` (a ``bankseg-features`` output folder holding features.parquet and labels.parquet)
    the table is read instead of rebuilt; it must hold every planned as_of date.
    """
    if features_path is None:
        return stack_training_frame(
            data_path, plan.train, plan.oot, label_settings=label_settings, **feature_kwargs
        )
    check_out_of_time(plan.train, plan.oot, label_settings)
    frame = read_feature_table(Path(features_path), [*plan.train, plan.oot])
    return mark_training_split(frame, plan.train, plan.oot, label_settings)


def read_feature_table(folder: Path, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """Features joined with labels from a ``bankseg-features`` output folder, for ``dates`` only.

    Read once per process for the same files and dates: ``bankseg-train -m model=personas,churn,conversion,upgrade``
    (one process, the models in turn) reads the table once for all four. The caller gets its own (copy-on-write)
    frame; a rewritten file (other size or modification time) is read again.
    """
    folder = Path(folder).resolve()
    stamps = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for name in ("features", "labels")
                   if (p := table_path(folder, name)) is not None)
    key = tuple(sorted(pd.Timestamp(d).isoformat() for d in dates))
    return _read_feature_table_once(folder, key, stamps).copy(deep=False)


@lru_cache(maxsize=1)
def _read_feature_table_once(folder: Path, dates: tuple[str, ...], stamps: tuple) -> pd.DataFrame:
    """The table of :func:`read_feature_table` (``stamps`` only key the cache: the files' sizes and times)."""
    wanted = [pd.Timestamp(d).to_pydatetime() for d in dates]
    features = read_table(folder, "features", filters=[("as_of", "in", wanted)])
    missing = sorted({pd.Timestamp(d).date().isoformat() for d in dates} - {
        d.date().isoformat() for d in pd.to_datetime(features["as_of"]).unique()
    })
    if missing:
        raise ValueError(f"{folder}/features.parquet lacks as_of dates {missing}: rerun bankseg-features with them")
    if table_path(folder, "labels") is None:
        raise ValueError(f"{folder} has no labels.parquet: training needs labels (bankseg-features with_labels=true)")
    labels = read_table(folder, "labels", filters=[("as_of", "in", wanted)])
    return features.merge(labels, on=["customer_id", "as_of"], how="left", validate="one_to_one")


@dataclass
class ModelData:
    """The rows a model is trained and judged on, and what describes them.

    ``frame`` has a ``split`` column: ``train`` rows fit the model (its own validation and calibration hold-outs
    come out of them) and ``eval_split`` rows judge it: ``oot`` (a later as_of) for a canonical dataset, ``test``
    (a stratified hold-out) for a flat snapshot, which has no time axis.
    """

    frame: pd.DataFrame
    eval_split: str
    fingerprint: str
    description: dict[str, Any]
    truth_path: Path | None = None
    validation: dict[str, Any] | None = None  # what the dataset's validation found (CheckedDataset.record)

    def log_validation(self) -> None:
        """Log the validation record into the active MLflow run (``validation.json``, tags, metrics)."""
        if self.validation is not None:
            from bankseg.data.checked import log_record

            log_record(self.validation)


def load_model_data(
    data_cfg: dict[str, Any],
    *,
    feature_kwargs: dict[str, Any],
    label_settings: LabelSettings,
    as_of_cfg: dict[str, Any],
    features_path: Path | None = None,
    use_ground_truth: bool = True,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    validation: dict[str, Any] | None = None,
) -> ModelData:
    """Build the training and evaluation rows for the dataset described by ``data_cfg`` (a conf/data/*.yaml).

    A dataset folder is validated first (``validation``: the conf/validation settings) and the rows are built
    from its kept rows only; planned or given as_of dates outside the data's range are refused.
    """
    if data_cfg.get("kind", "canonical") == "flat":
        return _flat_model_data(data_cfg, holdout_fraction, seed)
    from bankseg.data.checked import checked_dataset

    data_path = Path(data_cfg["path"])
    with checked_dataset(data_path, validation) as checked:
        first, last = checked.month_range
        plan = resolve_as_of_plan(
            as_of_cfg.get("train"),
            as_of_cfg.get("oot"),
            first,
            last,
            horizon_months=label_settings.longest_horizon_months,
            history_months=max(feature_kwargs.get("windows", (12,))),
            n_train=as_of_cfg.get("n_train", 4),
            step_months=as_of_cfg.get("step_months", 3),
        )
        checked.check_as_of([*plan.train, plan.oot])
        log.info("as_of plan: train %s, out-of-time %s", plan.as_dict()["train"], plan.as_dict()["oot"])
        frame = build_training_frame(checked.path, plan, feature_kwargs, label_settings, features_path)
    return ModelData(
        frame=frame,
        eval_split="oot",
        fingerprint=dataset_fingerprint(data_path),
        description={"as_of_plan": plan.as_dict()},
        truth_path=data_path if use_ground_truth else None,
        validation=checked.record(),
    )


def _flat_model_data(data_cfg: dict[str, Any], holdout_fraction: float, seed: int) -> ModelData:
    """A flat labelled snapshot with a stratified, seeded hold-out marked ``test``."""
    from bankseg.data.adapters.flat import FlatSpec, load_flat_snapshot
    from bankseg.data.privacy import pseudonymisation_key

    spec = FlatSpec.from_dict(data_cfg)
    frame = load_flat_snapshot(spec, key=pseudonymisation_key())
    label = spec.label_column
    rng = np.random.default_rng(seed)
    test = np.zeros(len(frame), dtype=bool)
    for value in pd.unique(frame[label]):  # stratified: the same share of each class held out
        rows = np.flatnonzero((frame[label] == value).to_numpy())
        test[rng.choice(rows, size=round(len(rows) * holdout_fraction), replace=False)] = True
    frame = frame.assign(split=np.where(test, "test", "train"))
    source = Path(spec.path)
    return ModelData(
        frame=frame,
        eval_split="test",
        fingerprint=file_fingerprint(source),
        description={"holdout": {"fraction": holdout_fraction, "seed": seed, "stratified_by": label,
                                 "n_test": int(test.sum()), "n_train": int((~test).sum())}},
    )


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's bytes (a flat snapshot's fingerprint)."""
    import hashlib

    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------- propensity models
def evaluate_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The standard metric set on the rows with a label (NaN labels are out of scope)."""
    keep = ~np.isnan(y)
    return m.binary_classification_report(y[keep].astype(int), p[keep])


def train_propensity(
    frame: pd.DataFrame,
    model_cfg: dict[str, Any],
    *,
    eval_split: str = "oot",
    truth_path: Path | None = None,
) -> tuple[Any, dict[str, dict[str, float]], dict[str, pd.DataFrame]]:
    """Fit a :class:`PropensityModel` on the training rows; return (model, metrics by split, tables).

    Metrics are computed on the training rows and on the ``eval_split`` rows (out of time, or a hold-out).
    """
    from bankseg.models.propensity import PropensityModel

    target = model_cfg["target"]
    if target not in frame.columns:
        labels_here = sorted(c for c in frame.columns if c.startswith("label_"))
        raise ValueError(f"model {model_cfg['name']} needs {target}; this data has {labels_here}")
    estimator = PropensityModel(**estimator_kwargs(PropensityModel, model_cfg))
    train = frame[frame["split"] == "train"].drop(columns=["split"])
    held = frame[frame["split"] == eval_split].drop(columns=["split"])
    estimator.fit(train)

    scores = {"train": estimator.predict_proba(train), eval_split: estimator.predict_proba(held)}
    labels = {"train": train[target].to_numpy(dtype=float), eval_split: held[target].to_numpy(dtype=float)}
    by_split = {split: evaluate_scores(labels[split], scores[split]) for split in scores}
    by_split["val"] = {
        metric: float(values[estimator.best_iteration_ - 1]) for metric, values in estimator.evals_result_["val"].items()
    }
    by_split["train"]["best_iteration"] = float(estimator.best_iteration_)
    by_split["train"]["n_dropped_unlabelled"] = float(estimator.n_dropped_)

    score_psi = m.psi(scores["train"], scores[eval_split], bins=PSI_BINS)
    by_split[eval_split]["psi_score"] = float(score_psi.value)
    keep = ~np.isnan(labels[eval_split])
    y_eval, p_eval = labels[eval_split][keep].astype(int), scores[eval_split][keep]
    tables = {
        f"{eval_split}_deciles": m.decile_table(y_eval, p_eval),
        f"{eval_split}_calibration": m.calibration_table(y_eval, p_eval),
        "psi_score_bins": score_psi.table,
    }
    if truth_path is not None:
        bound = label_bound(estimator, train, held, scores[eval_split], truth_path, max_train_rows=BOUND_MAX_TRAIN_ROWS)
        if bound is not None:
            by_split[eval_split].update(bound.metrics())
        seen = lead_time(truth_path, held, scores[eval_split], target) if target == "label_churn" else None
        if seen is not None:
            by_split[eval_split].update(seen[0])
            tables[f"{eval_split}_lead_time"] = seen[1]
    return estimator, {k: v for k, v in by_split.items() if v}, tables


# ------------------------------------------------------------------------------------------------ personas
def train_personas(
    frame: pd.DataFrame,
    model_cfg: dict[str, Any],
    *,
    previous=None,
    truth_path: Path | None = None,
) -> tuple[Any, dict[str, dict[str, float]], dict[str, pd.DataFrame]]:
    """Fit the persona model on the latest training as_of; ids matched to ``previous`` (the champion)."""
    from bankseg.models.personas import PersonaModel, persona_recovery_ari

    latest = frame[frame["as_of"] == frame.loc[frame["split"] == "train", "as_of"].max()]
    estimator = PersonaModel(**estimator_kwargs(PersonaModel, model_cfg))
    estimator.fit(latest, previous=previous)
    ids = estimator.predict(latest)
    fit_metrics = {
        "k": float(estimator.k_),
        "stability_ari": float(estimator.stability_),
        "n_customers": float(len(latest)),
    }
    truth = persona_truth(truth_path, latest["customer_id"].to_numpy()) if truth_path is not None else None
    if truth is not None:
        fit_metrics["ari_vs_planted"] = float(persona_recovery_ari(ids, truth))
    tables = {"profile": estimator.profile_.reset_index(), "k_selection": estimator.selection_.reset_index()}
    return estimator, {"train": fit_metrics}, tables


# ---------------------------------------------------------------------------------------------------- the job
def run_train(
    *,
    model_cfg: dict[str, Any],
    data_cfg: dict[str, Any],
    feature_kwargs: dict[str, Any],
    label_settings: LabelSettings,
    as_of_cfg: dict[str, Any],
    mlflow_cfg: dict[str, Any],
    config: dict[str, Any],
    register: bool = True,
    use_ground_truth: bool = True,
    features_path: Path | None = None,
    holdout_fraction: float = 0.2,
    report: dict[str, Any] | None = None,
) -> TrainResult:
    """Train, evaluate, log and (optionally) register the model described by ``model_cfg``.

    ``report`` (``{"settings": ModelReportSettings, "out_dir": folder, "personas_model": name}``) also builds the
    model review report of a registered propensity model (judged out of time, or on a flat source's hold-out)
    from the frame already in memory.
    """
    check_run_settings()  # a bad pseudonym key fails now, not after the model is registered
    configure_tracking(**mlflow_cfg)
    data = load_model_data(
        data_cfg, feature_kwargs=feature_kwargs, label_settings=label_settings, as_of_cfg=as_of_cfg,
        features_path=features_path, use_ground_truth=use_ground_truth, holdout_fraction=holdout_fraction,
        validation=config.get("validation"),
    )
    frame = data.frame
    kind, name = model_cfg["kind"], model_cfg["name"]
    registered = model_cfg["registered_name"]

    source = {TAG_DATA_SOURCE: str(data_cfg.get("name", "unnamed"))}
    with start_job_run("train", config, data.fingerprint, tags={"bankseg.model": name, **source}) as run:
        mlflow.log_dict(data.description, "data_split.json")
        data.log_validation()
        if kind == "personas":
            if data.eval_split != "oot":
                raise ValueError("personas need a canonical dataset (behaviour over time), not a flat snapshot")
            previous = _previous_champion(registered)
            estimator, by_split, tables = train_personas(
                frame, model_cfg, previous=previous, truth_path=data.truth_path
            )
            wrapper, example = PersonaPyfunc(estimator), frame.loc[frame["split"] == "train"].head(2)
        elif kind == "propensity":
            estimator, by_split, tables = train_propensity(
                frame, model_cfg, eval_split=data.eval_split, truth_path=data.truth_path
            )
            if model_cfg["target"] == "label_conversion" and data.eval_split == "oot":
                # scoring gives customers already at the target no probability, by the label's own rule
                estimator.label_scope_ = ConversionScope.from_settings(label_settings)
            wrapper, example = PropensityPyfunc(estimator), frame.loc[frame["split"] == data.eval_split].head(2)
        else:
            raise ValueError(f"model.kind must be 'personas' or 'propensity', got {kind!r}")
        flat = log_metrics_by_split(by_split)
        for table_name, table in tables.items():
            log_frame(table, f"tables/{table_name}.csv")
        # no customer's row reaches the model's artifacts: the example keeps the columns and types, not the values
        example = masked_input_example(to_model_input(example, input_columns(estimator)))
        signature = mlflow.models.ModelSignature(
            inputs=input_schema(example),
            outputs=mlflow.models.infer_signature(example, wrapper.predict(None, example)).outputs,
        )
        info = mlflow.pyfunc.log_model(
            name="model", python_model=wrapper, input_example=example, signature=signature,
            pip_requirements=model_requirements(),
        )
        version, moved = None, {}
        if register:
            moved = registry_aliases(registered)  # put back if a later check fails
            version = str(register_model(info.model_uri, registered, tags={"bankseg.run_id": run.info.run_id,
                                                                           **source}).version)
        log.info("%s: %s", name, ", ".join(f"{k}={v:.4f}" for k, v in sorted(flat.items())))
    result = TrainResult(name, run.info.run_id, flat, registered if register else None, version, tables)
    if report is not None and kind == "propensity" and version is not None:
        from bankseg.jobs.report import run_model_report

        try:
            built = run_model_report(
                model_cfg=model_cfg, data_path=Path(data_cfg["path"]), feature_kwargs=feature_kwargs,
                label_settings=label_settings, mlflow_cfg=mlflow_cfg, settings=report["settings"],
                out_dir=report["out_dir"], version=version, frame=frame, data_fingerprint=data.fingerprint,
                personas_model=report.get("personas_model", PERSONAS_MODEL),
            )
        except BaseException as err:  # a failed run leaves nothing registered (no first champion either)
            withdraw_version(registered, version, run.info.run_id, f"the model report failed: {type(err).__name__}",
                             restore=moved)
            raise
        result.report_path = built.path
    return result


def input_columns(estimator) -> list[str]:
    """The feature-table columns a fitted estimator reads."""
    names = getattr(estimator, "feature_names_", None)
    return list(names if names is not None else estimator.features)


def estimator_kwargs(estimator_class, model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The keys of a model config that are arguments of ``estimator_class`` (the rest describe the job)."""
    import inspect

    accepted = set(inspect.signature(estimator_class.__init__).parameters) - {"self"}
    return {key: value for key, value in model_cfg.items() if key in accepted}


def _previous_champion(registered: str):
    """The current champion's estimator (for stable persona ids), or None when there is none yet."""
    from bankseg.models.pyfunc import unwrap
    from bankseg.models.registry import find_version, load_model

    if find_version(registered, "champion") is None:
        return None
    return unwrap(load_model(registered, "champion"))

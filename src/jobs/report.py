"""Build a report: the model review report of one registered propensity model, or a scoring run's segment profile.

All disk and MLflow I/O of the reports sits here; :mod:`bankseg.reports` turns frames into HTML.

- :func:`run_model_report` loads the registered model (alias or version), reads its training run from MLflow,
  rebuilds the run's training frame from ``data_path`` with the run's as_of plan, loads the other alias
  (champion <-> challenger) when it points to another version and the personas champion when one exists, writes
  ``<out_dir>/<model>/model_report.html`` and logs it into the training run (``reports/``).
- :func:`run_segment_report` reads ``segments.parquet`` (+ ``summary.json``, ``features.parquet``,
  ``migration/*.parquet`` when present) from a scoring run's folder, optionally an earlier run's segments,
  writes ``<out_dir>/segments/segment_report.html`` and logs it to a new MLflow run of the ``report`` job.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bankseg.features.labels import LabelSettings
from bankseg.reports.model_report import (
    ModelReportSettings,
    ModelRun,
    build_model_report,
    load_registered_run,
)
from bankseg.reports.segment_report import ScoringRun, SegmentReportSettings, build_segment_report_html
from bankseg.scoring.score import FEATURE_SAMPLE_FILE

log = logging.getLogger(__name__)

SEGMENTS_FILE = "segments.parquet"
FEATURES_FILE = FEATURE_SAMPLE_FILE  # the scoring run's feature sample
SUMMARY_FILE = "summary.json"
MIGRATION_DIR = "migration"
OTHER_ALIAS = {"champion": "challenger", "challenger": "champion"}


@dataclass(frozen=True)
class ReportResult:
    """Where the report went and how long it took."""

    path: Path
    seconds: float
    run_id: str | None = None

    def render(self) -> str:
        where = f" (MLflow run {self.run_id})" if self.run_id else ""
        return f"report -> {self.path}{where} in {self.seconds:.1f} s"


# -------------------------------------------------------------------------------------------- model report
def run_model_report(
    *,
    model_cfg: Mapping[str, Any],
    data_path: Path | str,
    feature_kwargs: Mapping[str, Any],
    label_settings: LabelSettings,
    mlflow_cfg: Mapping[str, Any],
    settings: ModelReportSettings,
    out_dir: Path | str,
    alias: str | None = "champion",
    version: str | None = None,
    compare: bool = True,
    personas_model: str | None = "bankseg-personas",
    log_to_mlflow: bool = True,
    frame: pd.DataFrame | None = None,
    features_path: Path | str | None = None,
    data_cfg: Mapping[str, Any] | None = None,
    data_fingerprint: str | None = None,
    validation: Mapping[str, Any] | None = None,
) -> ReportResult:
    """The model review report of ``model_cfg``'s registered model (by ``alias`` or ``version``).

    ``frame`` skips rebuilding the training frame (a caller that has it, like the training job, which also gives
    its ``data_fingerprint``); ``features_path`` (a bankseg-features output holding the run's as_of dates) reads
    it instead of rebuilding it from ``data_path``: at a million customers the rebuild costs far more than the
    report itself. A model of a flat source (``data_cfg`` with ``kind: flat``) is judged on the stratified
    hold-out its run recorded, rebuilt from ``data_cfg`` with the same fraction and seed. A dataset folder is
    validated first with ``validation`` (conf/validation), as by every job.
    """
    from bankseg.models.tracking import configure_tracking

    started = time.perf_counter()
    if model_cfg.get("kind") != "propensity":
        raise ValueError(f"the model review report is for propensity models; model {model_cfg.get('name')!r} is "
                         f"{model_cfg.get('kind')!r}")
    configure_tracking(**mlflow_cfg)
    registered = model_cfg["registered_name"]
    if version is not None:
        alias = None
    run = load_registered_run(registered, alias=alias, version=version)
    if frame is None:
        frame, data_fingerprint = rebuild_training_frame(run, data_cfg or {"path": str(data_path)}, feature_kwargs,
                                                         label_settings, features_path, validation)
    challengers = _other_alias(run, registered) if compare else {}
    persona_model = _persona_champion(personas_model) if personas_model else None
    out_path = Path(out_dir) / run.model / "model_report.html"
    path = build_model_report(run, frame, settings, out_path, challengers=challengers, persona_model=persona_model,
                              data_fingerprint=data_fingerprint, log_to_mlflow=log_to_mlflow)
    return ReportResult(path, time.perf_counter() - started, run.run_id if log_to_mlflow else None)


def rebuild_training_frame(run: ModelRun, data_cfg: Mapping[str, Any], feature_kwargs: Mapping[str, Any],
                           label_settings: LabelSettings, features_path: Path | str | None = None,
                           validation: Mapping[str, Any] | None = None) -> tuple[pd.DataFrame, str]:
    """The rows ``run`` was trained and judged on, and the fingerprint of the data they were rebuilt from.

    Dated data: the run's as_of plan rebuilt from ``data_cfg["path"]`` (or read from ``features_path``). A flat
    source: its file split again with the hold-out fraction and seed the run logged.
    """
    from bankseg.data.checked import checked_dataset
    from bankseg.data.io import dataset_fingerprint
    from bankseg.jobs.train import build_training_frame, load_model_data
    from bankseg.models.oot_split import AsOfPlan

    if run.holdout:
        if data_cfg.get("kind") != "flat":
            raise ValueError(f"run {run.run_id} was validated on a hold-out of a flat source; give its data config "
                             f"(data=<name>), not only a path")
        data = load_model_data(dict(data_cfg), feature_kwargs=dict(feature_kwargs), label_settings=label_settings,
                               as_of_cfg={}, holdout_fraction=float(run.holdout["fraction"]),
                               seed=int(run.holdout.get("seed", 0)))
        return data.frame, data.fingerprint
    plan = AsOfPlan(tuple(pd.Timestamp(d) for d in run.as_of_plan["train"]), pd.Timestamp(run.as_of_plan["oot"]))
    data_path = Path(data_cfg["path"])
    with checked_dataset(data_path, validation) as checked:
        checked.check_as_of([*plan.train, plan.oot], f"run {run.run_id}'s as_of")
        frame = build_training_frame(checked.path, plan, dict(feature_kwargs), label_settings,
                                     None if features_path is None else Path(features_path))
    return frame, dataset_fingerprint(data_path)


def _other_alias(run: ModelRun, registered: str) -> dict[str, Any]:
    """The other of champion/challenger when it points to a different version: {label: estimator}."""
    from bankseg.models.registry import find_version

    mine = set(run.aliases)
    for alias in ("champion", "challenger"):
        if alias in mine:
            other = OTHER_ALIAS[alias]
            mv = find_version(registered, other)
            if mv is not None and str(mv.version) != str(run.version):
                other_run = load_registered_run(registered, version=str(mv.version))
                return {f"{other} (version {mv.version})": other_run.estimator}
    return {}


def _persona_champion(registered: str):
    """The personas champion's estimator, or None when there is none."""
    from bankseg.models.pyfunc import unwrap
    from bankseg.models.registry import find_version, load_model

    try:
        if find_version(registered, "champion") is None:
            return None
    except ValueError:
        return None
    return unwrap(load_model(registered, "champion"))


# ------------------------------------------------------------------------------------------ segment report
def read_scoring_run(scoring_dir: Path | str) -> ScoringRun:
    """A scoring run's folder: segments, and the summary, features and migration tables when present.

    The segments are ``segments.parquet`` or a ``segments/`` folder of parts (as bankseg-score writes them);
    migration tables ``migration.parquet`` or ``migration/*.parquet``. A bankseg-score ``out_dir`` holding one
    folder per as_of is accepted too: its latest run folder is read.
    """
    folder = Path(scoring_dir)
    if not _has_segments(folder):
        runs = sorted(p for p in folder.glob("*") if p.is_dir() and not p.name.startswith(".") and _has_segments(p))
        if not runs:
            raise FileNotFoundError(f"{folder} is not a scoring run's folder: no {SEGMENTS_FILE} or segments/ in it "
                                    "or in its subfolders")
        folder = runs[-1]
        log.info("reading the latest scoring run in %s: %s", scoring_dir, folder.name)
    segments = pd.read_parquet(folder / SEGMENTS_FILE if (folder / SEGMENTS_FILE).exists() else folder / "segments")
    summary = json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8")) if (folder / SUMMARY_FILE).exists() \
        else {}
    features = pd.read_parquet(folder / FEATURES_FILE) if (folder / FEATURES_FILE).exists() else None
    migration = {p.stem: pd.read_parquet(p) for p in sorted((folder / MIGRATION_DIR).glob("*.parquet"))}
    if (folder / f"{MIGRATION_DIR}.parquet").exists():
        migration[MIGRATION_DIR] = pd.read_parquet(folder / f"{MIGRATION_DIR}.parquet")
    return ScoringRun(segments, summary if isinstance(summary, dict) else {}, features, migration, folder.name)


def _has_segments(folder: Path) -> bool:
    return (folder / SEGMENTS_FILE).exists() or (folder / "segments").is_dir()


def _features_for(segments: pd.DataFrame, data_path: Path, feature_kwargs: Mapping[str, Any],
                  sample_size: int, seed: int, validation: Mapping[str, Any] | None = None,
                  ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Features as of the run's as_of for a seeded sample of its customers, rebuilt from the validated dataset;
    and the validation record."""
    from bankseg.data.checked import checked_dataset
    from bankseg.features.build import build_feature_table

    as_of = pd.to_datetime(segments["as_of"]).dropna().unique()
    if len(as_of) != 1:
        raise ValueError(f"the scoring output holds {len(as_of)} as_of dates; one is needed to rebuild features")
    ids = segments["customer_id"].to_numpy()
    if ids.size > sample_size:
        ids = np.sort(np.random.default_rng(seed).choice(ids, size=sample_size, replace=False))
    with checked_dataset(data_path, validation) as checked:
        checked.check_as_of([pd.Timestamp(as_of[0])], "the scoring run's as_of")
        frame = build_feature_table(checked.path, pd.Timestamp(as_of[0]), customers=ids, **dict(feature_kwargs))
    return frame.drop(columns=["as_of"]), checked.record()


def run_segment_report(
    *,
    scoring_dir: Path | str,
    labels_zh: Mapping[str, Mapping[str, str]],
    tier_names: list[str],
    settings: SegmentReportSettings,
    out_dir: Path | str,
    previous_dir: Path | str | None = None,
    data_path: Path | str | None = None,
    feature_kwargs: Mapping[str, Any] | None = None,
    top_share: float = 0.2,
    n_pareto_groups: int = 10,
    mlflow_cfg: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
) -> ReportResult:
    """The segment profile report of a scoring run; logged to MLflow when ``mlflow_cfg`` is given."""
    from bankseg.reports.html import write_html

    started = time.perf_counter()
    run = read_scoring_run(scoring_dir)
    validation = None
    if run.features is None and data_path is not None and Path(data_path).exists():
        run.features, validation = _features_for(run.segments, Path(data_path), feature_kwargs or {},
                                                 settings.feature_sample_size, settings.random_state,
                                                 (config or {}).get("validation"))
    elif run.features is not None and "as_of" in run.features:
        latest = pd.to_datetime(run.segments["as_of"]).max()
        run.features = run.features.loc[pd.to_datetime(run.features["as_of"]) == latest].drop(columns="as_of")
    previous = read_scoring_run(previous_dir).segments if previous_dir is not None else None
    text = build_segment_report_html(run, labels_zh, settings, tier_names=tier_names, previous=previous,
                                     top_share=top_share, n_pareto_groups=n_pareto_groups)
    path = write_html(text, Path(out_dir) / "segments" / "segment_report.html")
    run_id = None
    if mlflow_cfg is not None:
        import mlflow

        from bankseg.data.checked import log_record
        from bankseg.models.tracking import configure_tracking, start_job_run

        configure_tracking(**mlflow_cfg)
        with start_job_run("report", config or {}, None, tags={"bankseg.report": "segments",
                                                              "bankseg.scoring_dir": str(scoring_dir)}) as active:
            mlflow.log_artifact(str(path), "reports")
            mlflow.log_metric("report/customers", float(len(run.segments)))
            if validation is not None:
                log_record(validation)
            run_id = active.info.run_id
    return ReportResult(path, time.perf_counter() - started, run_id)

"""Assemble the champion models and the segment rules into the segmenter and register it (bankseg-export)."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from bankseg.data.checked import checked_dataset, log_record
from bankseg.data.io import dataset_fingerprint, read_table
from bankseg.features.build import build_feature_table
from bankseg.models.pyfunc import model_requirements, unwrap
from bankseg.models.registry import (
    MODEL_NAMES,
    SEGMENTER_MODEL,
    TAG_DATA_SOURCE,
    check_same_source,
    load_model,
    register_model,
    resolve_version,
)
from bankseg.models.tracking import check_run_settings, configure_tracking, log_frame, start_job_run
from bankseg.scoring.segmenter import (
    PROPENSITY_MODELS,
    SegmenterModel,
    assemble_segmenter,
    input_signature_schema,
    output_schema,
    segmenter_input,
)
from bankseg.segments import load_segment_rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """The registered segmenter version, its MLflow run and the model versions it holds."""

    version: str
    run_id: str
    model_versions: dict[str, str]
    reference_as_of: str
    n_reference: int
    name: str = SEGMENTER_MODEL

    def render(self) -> str:
        used = ", ".join(f"{k} v{v}" for k, v in self.model_versions.items())
        return (f"{self.name} version {self.version} (run {self.run_id}) from {used}; reference population "
                f"as of {self.reference_as_of}: {self.n_reference} customers")


def latest_training_as_of(run_id: str) -> pd.Timestamp:
    """The latest training as_of of a training run (``data_split.json`` ``as_of_plan``, or ``as_of_plan.json``)."""
    plan = None
    for artifact in ("data_split.json", "as_of_plan.json"):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=tmp)
            except Exception:  # an artifact this run does not have
                continue
            found = json.loads(Path(path).read_text())
        plan = found.get("as_of_plan", found)
        if plan.get("train"):
            break
    if not plan or not plan.get("train"):
        raise ValueError(f"run {run_id} records no training as_of dates; set reference_as_of")
    return max(pd.Timestamp(d) for d in plan["train"])


def load_source_models(alias: str, names: Mapping[str, str] | None = None, data_source: str | None = None,
                       propensity_models: Sequence[str] = PROPENSITY_MODELS,
                       ) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """The estimators behind ``alias`` of personas and ``propensity_models``: (estimators, versions, run ids).

    ``names`` maps each model to its registered name (default: the simulated bank's, :data:`MODEL_NAMES`).
    Raises ValueError when the versions were trained on different data sources, or not on ``data_source``.
    """
    names = dict(names or MODEL_NAMES)
    unknown = sorted(set(propensity_models) - set(PROPENSITY_MODELS))
    if unknown or not propensity_models:
        raise ValueError(f"propensity_models must be some of {list(PROPENSITY_MODELS)}, got {list(propensity_models)}")
    wanted = ("personas", *(m for m in PROPENSITY_MODELS if m in propensity_models))
    found = {model: resolve_version(names[model], alias) for model in wanted}
    check_same_source({f"{names[m]} v{mv.version}": mv for m, mv in found.items()}, expected=data_source)
    estimators = {model: unwrap(load_model(names[model], alias)) for model in wanted}
    versions = {model: str(mv.version) for model, mv in found.items()}
    runs = {model: mv.run_id for model, mv in found.items()}
    return estimators, versions, runs


def reference_population(data_path: Path | str, as_of: pd.Timestamp, feature_kwargs: Mapping[str, Any],
                         features_path: Path | str | None = None) -> pd.DataFrame:
    """The feature table as of ``as_of``: read from a bankseg-features folder when given, else rebuilt."""
    if features_path is None:
        kwargs = {**feature_kwargs, "engine": "pandas"}
        kwargs.pop("spark_master", None)
        return build_feature_table(data_path, as_of, **kwargs)
    frame = read_table(Path(features_path), "features", filters=[("as_of", "==", as_of.to_pydatetime())])
    if frame.empty:
        raise ValueError(f"{features_path}/features.parquet holds no rows as of {as_of.date()}: rerun "
                         f"bankseg-features with that date, or leave features_path unset to rebuild from data.path")
    return frame.sort_values("customer_id", ignore_index=True)


def run_export(
    *,
    data_path: Path | str,
    feature_kwargs: Mapping[str, Any],
    segments_cfg: Mapping,
    model_cfgs: Mapping[str, Mapping],
    mlflow_cfg: Mapping[str, Any],
    config: Mapping[str, Any],
    source_alias: str = "champion",
    reference_as_of: str | None = None,
    drift_cfg: Mapping[str, Any] | None = None,
    model_names: Mapping[str, str] | None = None,
    data_source: str | None = None,
    features_path: Path | str | None = None,
    propensity_models: Sequence[str] = PROPENSITY_MODELS,
) -> ExportResult:
    """Load the models at ``source_alias``, assemble the segmenter, log and register it (alias challenger).

    Personas and the ``propensity_models`` the data source supports (default all three; the others score
    nobody, band ``not_modelled``) are assembled.
    ``model_cfgs`` maps churn / conversion / upgrade to their model configs (``bands``, ``reason_codes`` with its
    ``dictionary.groups``). The reference population is the feature table of ``data_path`` as of
    ``reference_as_of`` (default: the latest training as_of of the first propensity model's run), read from the
    ``bankseg-features`` folder ``features_path`` when given, else rebuilt from ``data_path``.
    ``model_names`` are the registered names of the data source ``data_source`` (default: the simulated bank's
    bankseg-personas ... bankseg-segmenter); the segmenter is registered under ``model_names["segmenter"]``,
    tagged with the source it serves.
    """
    drift_cfg = dict(drift_cfg or {})
    check_run_settings()  # a bad pseudonym key fails before any work, and before anything is registered
    configure_tracking(**mlflow_cfg)
    rules = load_segment_rules(segments_cfg)
    names = dict(model_names or MODEL_NAMES)
    estimators, versions, runs = load_source_models(source_alias, names, data_source, propensity_models)
    held = [m for m in PROPENSITY_MODELS if m in estimators]
    as_of = pd.Timestamp(reference_as_of) if reference_as_of else latest_training_as_of(runs[held[0]])
    with checked_dataset(data_path, config.get("validation")) as checked:  # conf/validation
        checked.check_as_of([as_of], "reference_as_of")
        reference = reference_population(checked.path, as_of, feature_kwargs, features_path)
    log.info("reference population as of %s: %d customers", as_of.date(), len(reference))
    reason_dictionary = dict(model_cfgs[held[0]]["reason_codes"]["dictionary"])
    segmenter = assemble_segmenter(
        personas=estimators["personas"],
        propensity={m: estimators[m] for m in held},
        rules=rules,
        reference=reference,
        bands={m: model_cfgs[m]["bands"] for m in held},
        reason_codes={m: model_cfgs[m]["reason_codes"] for m in held},
        reason_specs=reason_dictionary.pop("groups"),
        reason_text=reason_dictionary,
        currency=str((config.get("data") or {}).get("currency", "CNY")),
        model_versions=versions,
        drift_bins=int(drift_cfg.get("bins", 10)),
        drift_top_features=int(drift_cfg.get("top_features", 5)),
        drift_sample=int(drift_cfg.get("sample", 5000)),
        data_source=data_source,
    )
    return log_segmenter(segmenter, reference, config, dataset_fingerprint(data_path), runs,
                         name=names["segmenter"], data_source=data_source, validation=checked.record())


def log_segmenter(
    segmenter: SegmenterModel,
    reference: pd.DataFrame,
    config: Mapping[str, Any],
    fingerprint: str | None,
    source_runs: Mapping[str, str] | None = None,
    name: str = SEGMENTER_MODEL,
    data_source: str | None = None,
    validation: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Log the segmenter as a pyfunc model with its explicit signature, register it as ``name`` and return the version.

    No input example is logged: it would put customers' rows into MLflow's artifacts (privacy). ``validation``
    (:meth:`bankseg.data.checked.CheckedDataset.record` of the reference data) is logged as ``validation.json``.
    """
    parts = segmenter.parts
    example = segmenter_input(reference.head(20), parts.input_columns)
    signature = mlflow.models.ModelSignature(inputs=input_signature_schema(example), outputs=output_schema())
    tags = {f"bankseg.{m}_version": v for m, v in parts.model_versions.items()}
    data_source = data_source or segmenter.data_source
    served = {TAG_DATA_SOURCE: data_source} if data_source else {}  # on the run, the version and the MLmodel
    with start_job_run("export", config, fingerprint, tags={**tags, **served}) as run:
        mlflow.log_dict(parts.model_versions, "model_versions.json")
        if validation is not None:
            log_record(validation)
        mlflow.log_dict(parts.drift_reference, "drift_reference.json")
        mlflow.log_dict(parts.rfm_bins.to_dict(), "rfm_bins.json")
        mlflow.log_dict(dict(source_runs or {}), "source_runs.json")
        log_frame(parts.lift_table.reset_index(), "lift_table.csv")
        mlflow.log_metric("reference/n_customers", float(len(reference)))
        info = mlflow.pyfunc.log_model(
            name="segmenter", python_model=segmenter, signature=signature,
            pip_requirements=model_requirements(), metadata=served or None,
        )
        version = register_model(info.model_uri, name, tags={"bankseg.run_id": run.info.run_id, **served})
        return ExportResult(
            name=name, version=str(version.version), run_id=run.info.run_id, model_versions=dict(parts.model_versions),
            reference_as_of=str(parts.drift_reference.get("as_of")), n_reference=len(reference),
        )

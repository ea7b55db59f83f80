"""The batch scoring job's work: validate, build features by bucket, score chunk by chunk, write atomically.

One run scores every customer of a dataset folder (or of a precomputed feature table) as of one date with one
registered segmenter version, and writes a run folder ``<out_dir>/<as_of>/``:

- ``segments/part-NNNNN.parquet``: the output (:data:`bankseg.scoring.segmenter.OUTPUT_COLUMNS` plus
  ``segmenter_version``; ``as_of`` a date), one part per chunk, rows sorted by customer_id within a part;
- ``rejects.parquet``: what was set aside, one row per rejected data row or customer (:data:`REJECT_COLUMNS`:
  ``stage`` validation | features | scoring, ``table``, ``row`` (position in the table, for data rows),
  ``customer_id``, ``txn_id``, ``reason``);
- ``features.parquet``: the feature rows (as of the run's date) of a seeded sample of the scored customers
  (``feature_sample`` of them, chosen by a hash of the customer id, so the same whatever the buckets or workers):
  the segment profile report reads them instead of rebuilding features from the data;
- ``summary.json``: counts in / out / rejected, counts by segment, timings, model versions, drift (PSI) and,
  with ``previous``, the migration tables; ``drift.parquet``, ``migration.parquet``, ``override_audit.parquet``.

Every customer of the customers table is in the output exactly once or in the rejects (stage features:
opened on or after as_of; scoring: a required output is missing) exactly once: ``n_customers_in = n_out +
n_customers_rejected``, checked before the folder is published. Data rows refused by validation are left out of
the features and listed in the rejects (stage validation); their customers are still scored.

Atomic: everything is written into ``<out_dir>/.tmp-<run>/`` and renamed to ``<out_dir>/<as_of>/`` at the end (an
earlier folder for that date is replaced in the same step); a run that fails or is killed leaves no folder at the
output path (a ``.tmp-*`` folder at most, removed by the next run into ``out_dir``, which also marks the killed
run's MLflow run FAILED; one run at a time per ``out_dir``: :func:`bankseg.data.run_lock.out_dir_lock`). Idempotent: the same input and model give byte-identical files
except the timings and run id in ``summary.json``.

Privacy: the output carries the bank's customer ids; the summary, MLflow and logs hold counts and pseudonymised
example ids only (:func:`bankseg.data.privacy.pseudonymise`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bankseg.data.io import read_table
from bankseg.features.build import (
    BucketSource,
    FeatureSettings,
    bucket_sources,
    build_bucket_features,
    load_bucket,
    n_buckets_for,
    splitmix64,
)
from bankseg.parallel import map_ordered, resolve_workers
from bankseg.scoring.migration import (
    drift_columns,
    drift_counts,
    drift_table,
    sum_counts,
    transition_matrices,
)
from bankseg.scoring.segmenter import (
    OUTPUT_COLUMNS,
    REQUIRED_OUTPUTS,
    apply_overrides,
    predict_segments,
    segmenter_input,
)

log = logging.getLogger(__name__)

REJECT_COLUMNS: tuple[str, ...] = ("stage", "table", "row", "customer_id", "txn_id", "reason")
SEGMENT_COUNT_COLUMNS: tuple[str, ...] = (
    "composite_tier", "service_tier", "quadrant", "value_class", "lifecycle", "rfm_segment", "risk_appetite",
    "persona_name", "churn_band", "conversion_band", "upgrade_band", "action", "next_best_product",
)
OUTPUT_FOLDER = "segments"
FEATURE_SAMPLE_FILE = "features.parquet"
_SAMPLE_SALT = np.uint64(0x5EED_5A3B_1E00_0014)  # decorrelates the sample from the buckets (same hash family)


@dataclass
class ScoreResult:
    """Where a run wrote its folder, and its summary."""

    run_dir: Path
    summary: dict[str, Any]
    run_id: str | None = None

    def render(self) -> str:
        s = self.summary
        c = s["counts"]
        return (f"scored {c['customers_out']} of {c['customers_in']} customers as of {s['as_of']} "
                f"({c['customers_rejected']} rejected, {c['rows_rejected']} data rows rejected) with "
                f"bankseg-segmenter v{s['segmenter_version']} into {self.run_dir}")


@dataclass
class Tally:
    """What an engine adds up while the run goes (bounded: counts, not rows); both engines fill the same one."""

    rejects: list[pd.DataFrame] = field(default_factory=list)
    drift: list[pd.DataFrame] = field(default_factory=list)
    feature_sample: list[pd.DataFrame] = field(default_factory=list)
    audit: list[pd.DataFrame] = field(default_factory=list)
    n_out: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    unknown_categories: dict[str, int] = field(default_factory=dict)  # input column -> rows with unseen values

    def clock(self, step: str, started: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - started


# ------------------------------------------------------------------------------------------------- rejects
def empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({
        "stage": pd.Series([], dtype="str"), "table": pd.Series([], dtype="str"),
        "row": pd.array([], dtype="Int64"), "customer_id": pd.array([], dtype="Int64"),
        "txn_id": pd.array([], dtype="Int64"), "reason": pd.Series([], dtype="str"),
    })


def customer_rejects(customer_ids, stage: str, reason: str | Sequence[str]) -> pd.DataFrame:
    """One rejects row per customer (table ``customers``)."""
    ids = np.asarray(customer_ids, dtype=np.int64)
    reasons = np.broadcast_to(np.asarray(reason, dtype=object), ids.shape)
    return pd.DataFrame({
        "stage": pd.Series([stage] * len(ids), dtype="str"), "table": pd.Series(["customers"] * len(ids), dtype="str"),
        "row": pd.array([pd.NA] * len(ids), dtype="Int64"), "customer_id": pd.array(ids, dtype="Int64"),
        "txn_id": pd.array([pd.NA] * len(ids), dtype="Int64"), "reason": pd.Series(reasons, dtype="str"),
    })


def validation_rejects(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejects of :mod:`bankseg.data.validate` in the job's rejects layout (stage ``validation``)."""
    out = pd.DataFrame({
        "stage": pd.Series(["validation"] * len(rejects), dtype="str"),
        "table": rejects["table"].astype("str").to_numpy(),
        "row": pd.array(rejects["row"], dtype="Int64"),
        "customer_id": pd.array(rejects["customer_id"], dtype="Int64"),
        "txn_id": pd.array(rejects["txn_id"], dtype="Int64"),
        "reason": rejects["reason"].astype("str").to_numpy(),
    })
    return out.astype({"table": "str", "reason": "str"})


def no_feature_row_rejects(customers: pd.DataFrame, feature_ids, as_of: pd.Timestamp) -> pd.DataFrame:
    """Rejects (stage features) of the customers with no feature row, each for the reason the data gives.

    ``customers`` holds ``customer_id`` and ``open_date`` of the customers table (a bucket's or the whole
    bank's); ``feature_ids`` the customer ids that got a feature row as of ``as_of``. The customers block gives
    a row to everyone who opened before ``as_of``, so a missing row is explained by an ``open_date`` on or after
    ``as_of`` (not a customer yet) or by no ``open_date`` at all. A customer who opened before ``as_of`` and still
    has no row is given no reason: nothing in the data explains the loss, so the run's count check
    (:func:`check_accounted`) fails on them. Without an ``open_date`` column (a precomputed feature table is the
    population) no reason is derived. Used by both engines.
    """
    ids = customers["customer_id"].to_numpy(dtype=np.int64)
    lacking = ~np.isin(ids, np.asarray(feature_ids, dtype=np.int64))
    if not lacking.any() or "open_date" not in customers.columns:
        return empty_rejects()
    opened = pd.to_datetime(customers["open_date"]).to_numpy()[lacking]
    ids = ids[lacking]
    late = opened >= as_of.to_datetime64()  # NaT compares False
    undated = np.isnat(opened)
    return pd.concat([
        customer_rejects(ids[late], "features", f"no account open before as_of {as_of.date()}"),
        customer_rejects(ids[undated], "features", "no open_date in the customers table"),
    ], ignore_index=True)


def check_accounted(customer_ids: np.ndarray, out_ids: np.ndarray, rejected_ids: np.ndarray,
                    as_of: pd.Timestamp, engine: str) -> None:
    """Raise unless every input customer is in the output or the customer rejects exactly once (in = out + rejects).

    The error gives counts, the reason that is missing and pseudonymised examples (never the bank's ids).
    """
    from bankseg.data.privacy import pseudonymisation_key, pseudonymise

    unique, n_seen = np.unique(np.concatenate([out_ids, rejected_ids]), return_counts=True)
    twice = unique[n_seen > 1]
    missing = np.setdiff1d(customer_ids, unique)
    extra = np.setdiff1d(unique, customer_ids)
    if not (len(twice) or len(missing) or len(extra)):
        return
    problems = []
    if len(missing):
        shown = [str(p) for p in pseudonymise(missing[:3], pseudonymisation_key())]
        problems.append(
            f"{len(missing)} neither scored nor rejected: the {engine} engine gave them no output row and no "
            f"reject reason (a customer without a feature row is rejected only for what the data says: open_date "
            f"on or after as_of {as_of.date()}, or no open_date), so their rows were lost on the way "
            f"(e.g. pseudonyms {shown})"
        )
    if len(twice):
        problems.append(f"{len(twice)} both scored and rejected, or twice")
    if len(extra):
        problems.append(f"{len(extra)} in the output or rejects but not in the input")
    raise ValueError(f"scoring lost track of customers (in != out + rejects): {'; '.join(problems)}")


def unscored_rows(output: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a segmenter output lacking a required value: (row mask, reason per row)."""
    missing = output[list(REQUIRED_OUTPUTS)].isna().to_numpy()
    bad = missing.any(axis=1)
    names = np.asarray(REQUIRED_OUTPUTS, dtype=object)
    reasons = np.array(
        ["segmenter could not score: no " + ", ".join(names[row]) for row in missing[bad]], dtype=object
    )
    return bad, reasons


# --------------------------------------------------------------------------------------------------- chunks
def bucket_feature_chunk(
    source: BucketSource, as_of: pd.Timestamp, settings: FeatureSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the bucket's customers: customer_id and open_date, their feature rows as of ``as_of``): one bucket of the
    folder of kept rows (:attr:`bankseg.data.checked.CheckedDataset.path`), loaded."""
    tables = load_bucket(source)
    customers = tables["customers"][["customer_id", "open_date"]]
    features = build_bucket_features(tables, [as_of], settings)
    return customers, features.sort_values("customer_id", kind="stable", ignore_index=True)


def iter_feature_table_chunks(
    features_path: Path, as_of: pd.Timestamp, chunk_customers: int
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield chunks of a precomputed feature table's rows of ``as_of`` (the chunk's customer ids as a frame, its rows)."""
    path = Path(features_path)
    table = pd.read_parquet(path)
    table = table[pd.to_datetime(table["as_of"]) == as_of].sort_values("customer_id", ignore_index=True)
    if table.empty:
        raise ValueError(f"feature table {path} holds no rows as of {as_of.date()}")
    for start in range(0, len(table), chunk_customers):
        part = table.iloc[start:start + chunk_customers].reset_index(drop=True)
        yield part[["customer_id"]], part


def score_chunk(
    model,
    input_columns: Sequence[str],
    customers: pd.DataFrame,
    features: pd.DataFrame,
    as_of: pd.Timestamp,
    segmenter_version: str,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Score one chunk with the pyfunc model: (output rows kept, rejects of the chunk, the drift input frame,
    rows per input column holding a category value the models never saw, mapped to "unknown" or missing).

    ``customers`` are the chunk's customers (customer_id, open_date when known): those without a feature row
    are rejected by :func:`no_feature_row_rejects`.
    """
    rejects = [no_feature_row_rejects(customers, features["customer_id"], as_of)]
    if not len(features):
        return pd.DataFrame(columns=[*OUTPUT_COLUMNS, "segmenter_version"]), pd.concat(rejects), features, {}
    model_input = segmenter_input(features, input_columns)
    unknown = model.unwrap_python_model().unknown_categories(model_input)
    output = predict_segments(model, model_input)
    bad, reasons = unscored_rows(output)
    if bad.any():
        rejects.append(customer_rejects(output.loc[bad, "customer_id"], "scoring", reasons))
    output = output.loc[~bad].reset_index(drop=True)
    output["segmenter_version"] = str(segmenter_version)
    drift_input = features.loc[~bad].reset_index(drop=True)
    return output, pd.concat(rejects, ignore_index=True), drift_input, unknown


def output_table(output: pd.DataFrame) -> pa.Table:
    """The Parquet form of an output chunk: fixed column order and types (as_of a date32)."""
    frame = output.assign(as_of=pd.to_datetime(output["as_of"]).dt.date)
    return pa.Table.from_pandas(frame[[*OUTPUT_COLUMNS, "segmenter_version"]], schema=OUTPUT_SCHEMA,
                                preserve_index=False)


def _output_schema() -> pa.Schema:
    from bankseg.scoring.segmenter import FLOAT_COLUMNS, INT_COLUMNS

    fields = []
    for column in [*OUTPUT_COLUMNS, "segmenter_version"]:
        if column in INT_COLUMNS:
            fields.append(pa.field(column, pa.int64()))
        elif column in FLOAT_COLUMNS:
            fields.append(pa.field(column, pa.float64()))
        elif column == "as_of":
            fields.append(pa.field(column, pa.date32()))
        else:
            fields.append(pa.field(column, pa.string()))
    return pa.schema(fields)


OUTPUT_SCHEMA = _output_schema()


# ------------------------------------------------------------------------------------------------- the run
def run_folder_name(as_of: pd.Timestamp) -> str:
    return as_of.date().isoformat()


def publish(tmp_dir: Path, final_dir: Path) -> None:
    """Move the finished run folder into place, replacing an earlier folder for that date in one rename."""
    old = None
    if final_dir.exists():
        old = final_dir.with_name(f".old-{final_dir.name}-{uuid.uuid4().hex[:8]}")
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class BucketScorer:
    """Scores one chunk of customers: features (for a bucket of a dataset folder), segmenter, overrides, drift.

    The task a scoring worker runs. Picklable: the loaded model stays behind, and a worker loads it once from
    ``model_path`` (a local copy of the registered segmenter).
    """

    model_path: str | None
    as_of: pd.Timestamp
    settings: FeatureSettings
    segmenter_version: str
    overrides: pd.DataFrame | None
    known_customer_ids: np.ndarray | None
    sample_fraction: float = 0.0
    model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "model": None}

    def __call__(self, chunk: BucketSource | tuple[pd.DataFrame, pd.DataFrame]) -> _ChunkResult:
        model = self.model if self.model is not None else _local_model(self.model_path)
        segmenter = model.unwrap_python_model()
        started = time.perf_counter()
        customers, features = (bucket_feature_chunk(chunk, self.as_of, self.settings)
                         if isinstance(chunk, BucketSource) else chunk)
        result = _ChunkResult(seconds={"features": time.perf_counter() - started})
        started = time.perf_counter()
        output, result.rejects, drift_input, result.unknown = score_chunk(
            model, segmenter.input_columns, customers, features, self.as_of, self.segmenter_version
        )
        if self.overrides is not None and len(output):
            output, result.audit = apply_overrides(output, self.overrides, segmenter.rules, self.known_customer_ids)
        if len(output):
            reference = segmenter.parts.drift_reference
            columns = drift_columns(reference)
            frame = drift_input[[c for c in columns if not c.startswith("p_")]].assign(
                **{c: output[c].to_numpy() for c in columns if c.startswith("p_")}
            )
            result.drift = drift_counts(reference, frame)
            result.feature_sample = drift_input.loc[in_sample(drift_input["customer_id"], self.sample_fraction)]
        result.output = output
        result.seconds["scoring"] = time.perf_counter() - started
        return result


@dataclass
class _ChunkResult:
    output: pd.DataFrame | None = None
    rejects: pd.DataFrame | None = None
    drift: pd.DataFrame | None = None
    audit: pd.DataFrame | None = None
    feature_sample: pd.DataFrame | None = None
    unknown: dict[str, int] = field(default_factory=dict)  # input column -> rows with unseen categories
    seconds: dict[str, float] = field(default_factory=dict)


def in_sample(customer_ids, fraction: float) -> np.ndarray:
    """Whether each customer is in the seeded feature sample: a hash of its id below ``fraction`` (a mask)."""
    ids = np.asarray(customer_ids, dtype=np.int64)
    if fraction >= 1.0:
        return np.ones(ids.shape, dtype=bool)
    unit = (splitmix64(ids.view(np.uint64) ^ _SAMPLE_SALT) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return unit < fraction


@cache
def _local_model(path: str):
    """The segmenter of a local model folder, loaded once per process."""
    import mlflow

    return mlflow.pyfunc.load_model(path)


def score_pandas(
    *,
    scorer: BucketScorer,
    tmp_dir: Path,
    chunks: Iterable[BucketSource | tuple[pd.DataFrame, pd.DataFrame]],
    tally: Tally,
    workers: int = 1,
    progress: bool = True,
    total: int | None = None,
) -> None:
    """Score chunk by chunk in ``workers`` processes; write one output part per chunk (in chunk order).

    Each chunk's output part is written here, numbered in chunk order, so the files do not depend on
    ``workers``. Timings of features and scoring are summed over the chunks (CPU-like with several workers).
    """
    from tqdm.auto import tqdm

    out_dir = tmp_dir / OUTPUT_FOLDER
    out_dir.mkdir(parents=True, exist_ok=True)
    results = tqdm(map_ordered(scorer, chunks, workers), total=total, desc="scoring", unit="chunk",
                   disable=not progress)
    part = 0
    for result in results:
        for step, seconds in result.seconds.items():
            tally.seconds[step] = tally.seconds.get(step, 0.0) + seconds
        tally.rejects.append(result.rejects)
        for column, n in result.unknown.items():
            tally.unknown_categories[column] = tally.unknown_categories.get(column, 0) + n
        if result.audit is not None:
            tally.audit.append(result.audit)
        if len(result.output):
            tally.drift.append(result.drift)
            if len(result.feature_sample):
                tally.feature_sample.append(result.feature_sample)
            pq.write_table(output_table(result.output), out_dir / f"part-{part:05d}.parquet")
            part += 1
            tally.n_out += len(result.output)
    if part == 0:
        pq.write_table(OUTPUT_SCHEMA.empty_table(), out_dir / "part-00000.parquet")


def score_pandas_run(scorer: BucketScorer, *, model_uri: str, tmp_dir: Path, tally: Tally,
                     data_path: Path | None, features_path: Path | str | None, chunk_customers: int,
                     n_buckets: int, workers: int, progress: bool) -> None:
    """The pandas engine: buckets of ``data_path`` (or chunks of ``features_path``) scored by ``workers`` processes.

    With more than one worker the segmenter is copied out of the registry once, into a temporary folder each
    worker loads it from.
    """
    n_customers = len(scorer.known_customer_ids)
    with _chunks(data_path, features_path, scorer.as_of, n_customers, chunk_customers, n_buckets, workers) as chunks:
        total = len(chunks) if isinstance(chunks, list) else math.ceil(n_customers / chunk_customers)
        workers = min(workers, max(total, 1))
        with _model_copy(model_uri, workers > 1) as path:
            scorer.model_path = path
            score_pandas(scorer=scorer, tmp_dir=tmp_dir, chunks=chunks, tally=tally, workers=workers,
                         progress=progress, total=total)


@contextmanager
def _chunks(data_path: Path | None, features_path: Path | str | None, as_of: pd.Timestamp, n_customers: int,
            chunk_customers: int, n_buckets: int, workers: int):
    """The chunks to score: bucket sources of a dataset folder, or chunks read from a feature table."""
    if data_path is None:
        yield iter_feature_table_chunks(Path(features_path), as_of, chunk_customers)
        return
    n_buckets = n_buckets_for(n_customers, chunk_customers, n_buckets, workers)
    with bucket_sources(data_path, n_buckets, scatter=n_buckets > workers) as sources:
        yield sources


@contextmanager
def _model_copy(model_uri: str, wanted: bool):
    """A local copy of the model's files for worker processes (None when not ``wanted``), removed afterwards."""
    if not wanted:
        yield None
        return
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(prefix="bankseg-segmenter-") as tmp:
        yield mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)


def read_output(run_dir: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The output of a run folder (or of its ``segments`` folder), optionally some columns."""
    run_dir = Path(run_dir)
    folder = run_dir / OUTPUT_FOLDER if (run_dir / OUTPUT_FOLDER).is_dir() else run_dir
    return pd.read_parquet(folder, columns=list(columns) if columns is not None else None)


def segment_counts(output: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Customers per value of each segment column (missing as ``__missing__``), for the summary."""
    counts = {}
    for column in SEGMENT_COUNT_COLUMNS:
        if column in output.columns:
            values = output[column].astype("str").where(output[column].notna(), "__missing__")
            counts[column] = {str(k): int(v) for k, v in values.value_counts().sort_index().items()}
    return counts


def examples(output: pd.DataFrame, n: int) -> list[dict[str, Any]]:
    """A few output rows with pseudonymised customer ids (never the bank's own ids)."""
    from bankseg.data.privacy import pseudonymisation_key, pseudonymise

    if n <= 0 or output.empty:
        return []
    rows = output.sort_values("customer_id").head(n)
    shown = ["composite_tier", "service_tier", "quadrant", "persona_name", "churn_band", "action"]
    pseudo = pseudonymise(rows["customer_id"].to_numpy(), pseudonymisation_key())
    return [
        {"customer_pseudonym": str(p), **{c: (None if pd.isna(r[c]) else str(r[c])) for c in shown}}
        for p, (_, r) in zip(pseudo, rows.iterrows(), strict=True)
    ]


def check_served_source(segmenter, label: str, data_source: str | None) -> None:
    """Refuse to score ``data_source``'s customers with a segmenter whose models learned from another source."""
    served = segmenter.data_source
    if data_source and served and served != data_source:
        raise ValueError(f"{label} serves data source {served!r}, not {data_source!r}: score with data={served}, "
                         f"or export a segmenter for {data_source!r} (its own registry.prefix) and score with that")


def run_score(
    *,
    as_of: str | pd.Timestamp,
    out_dir: Path | str,
    mlflow_cfg: Mapping[str, Any],
    config: Mapping[str, Any],
    data_path: Path | str | None = None,
    features_path: Path | str | None = None,
    feature_kwargs: Mapping[str, Any] | None = None,
    engine: str = "pandas",
    model_alias: str = "champion",
    model_version: str | int | None = None,
    previous: Path | str | None = None,
    chunk_customers: int = 200_000,
    overrides_path: Path | str | None = None,
    validate: bool = True,
    spark_master: str = "local[2]",
    n_examples: int = 5,
    progress: bool = True,
    segmenter_name: str | None = None,
    validation: Mapping[str, Any] | None = None,
    feature_sample: int = 50_000,
    data_source: str | None = None,
) -> ScoreResult:
    """Score every customer as of ``as_of`` with the registered segmenter and publish the run folder.

    ``data_path`` is a dataset folder (validated with the conf/validation settings ``validation``, then
    features built in buckets from its kept rows) or ``features_path`` a precomputed feature table.
    ``as_of="latest"`` (dataset folder only) is the first day after the data's last month; an as_of outside
    the data's range is refused. ``model_version`` (if given) wins over ``model_alias``. ``previous`` is an
    earlier run folder: migration tables between the two go into ``migration.parquet`` and the summary.
    ``engine="spark"`` runs features and scoring on Spark (:mod:`bankseg.scoring.spark`). ``segmenter_name`` is
    the data source's segmenter (default bankseg-segmenter, the simulated bank's). ``feature_sample``: about
    this many scored customers' feature rows go to ``features.parquet`` (pandas engine; 0 = none).
    A segmenter that serves another source than ``data_source`` (the data config's name) is refused before any
    data is read.
    """
    import mlflow

    from bankseg.data.io import dataset_fingerprint
    from bankseg.models.registry import SEGMENTER_MODEL, TAG_DATA_SOURCE, resolve_version, version_uri
    from bankseg.models.tracking import configure_tracking, start_job_run
    from bankseg.segments import read_overrides

    _check_arguments(engine, data_path, features_path, as_of)
    out_dir = Path(out_dir)
    feature_kwargs = dict(feature_kwargs or {})
    settings = FeatureSettings(**{k: v for k, v in feature_kwargs.items() if k in FeatureSettings.__dataclass_fields__})
    configure_tracking(**mlflow_cfg)
    name = segmenter_name or SEGMENTER_MODEL
    version = str(model_version) if model_version is not None else str(resolve_version(name, model_alias).version)
    model_uri = version_uri(name, version)
    model = mlflow.pyfunc.load_model(model_uri)
    segmenter = model.unwrap_python_model()
    check_served_source(segmenter, f"{name} version {version}", data_source)
    run_tag = uuid.uuid4().hex[:12]
    tmp_dir = out_dir / f".tmp-{run_tag}"
    fingerprint = dataset_fingerprint(data_path) if data_path is not None else None
    tally = Tally()
    started_run = time.perf_counter()
    tags = {"bankseg.segmenter_version": version, "bankseg.engine": engine,
            **({TAG_DATA_SOURCE: segmenter.data_source} if segmenter.data_source else {})}
    # out_dir is locked for the run: a second run into it refuses; a killed run's .tmp-* folder goes on the next
    with start_job_run("score", config, fingerprint, tags=tags, out_dir=out_dir) as run, ExitStack() as stack:
        try:
            tmp_dir.mkdir(parents=True, exist_ok=False)
            overrides = read_overrides(overrides_path, segmenter.rules.composite_tier.names) if overrides_path else None
            validation_record: dict[str, Any] = {}
            if data_path is not None:
                t = time.perf_counter()
                data_path, as_of, validation_record = _checked_input(
                    stack, Path(data_path), as_of, validation, validate, tally)
                tally.clock("validation", t)
                customers = read_table(data_path, "customers", columns=["customer_id", "open_date"])
                customer_ids = customers["customer_id"].to_numpy(np.int64)
            else:
                as_of = pd.Timestamp(as_of).normalize()
                customer_ids = feature_table_customer_ids(Path(features_path), as_of)
            final_dir = out_dir / run_folder_name(as_of)
            if engine == "spark":
                from bankseg.scoring.spark import score_spark

                score_spark(
                    model_uri=model_uri, segmenter=segmenter, segmenter_version=version, data_path=data_path,
                    as_of=as_of, settings=settings, tmp_dir=tmp_dir, overrides=overrides,
                    customers=customers, tally=tally, master=spark_master,
                    n_buckets=int(feature_kwargs.get("n_buckets", 1)),
                )
            else:
                scorer = BucketScorer(
                    model_path=None, as_of=as_of, settings=settings, segmenter_version=version,
                    overrides=overrides, known_customer_ids=customer_ids, model=model,
                    sample_fraction=min(1.0, feature_sample / max(len(customer_ids), 1)),
                )
                score_pandas_run(scorer, model_uri=model_uri, tmp_dir=tmp_dir, tally=tally, data_path=data_path,
                                 features_path=features_path, chunk_customers=chunk_customers,
                                 n_buckets=int(feature_kwargs.get("n_buckets", 1)),
                                 workers=resolve_workers(feature_kwargs.get("workers", 1)), progress=progress)
            summary, tables = finish_run(
                tmp_dir=tmp_dir, as_of=as_of, customer_ids=customer_ids, tally=tally, segmenter=segmenter,
                version=version, previous=previous, validation=validation_record, n_examples=n_examples,
                engine=engine, run_id=run.info.run_id,
            )
            tally.seconds["total"] = time.perf_counter() - started_run
            summary["timings_seconds"] = {k: round(v, 3) for k, v in tally.seconds.items()}
            (tmp_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=True))
            publish(tmp_dir, final_dir)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        log_score_run(summary, tables, validation_record, tally.seconds)
    return ScoreResult(final_dir, summary, run.info.run_id)


def _check_arguments(engine: str, data_path, features_path, as_of) -> None:
    """Refuse a run_score call whose inputs do not fit together, before anything is loaded."""
    if engine not in ("pandas", "spark"):
        raise ValueError(f"engine must be 'pandas' or 'spark', got {engine!r}")
    if (data_path is None) == (features_path is None):
        raise ValueError("give exactly one of data_path (a dataset folder) and features_path (a feature table)")
    if engine == "spark" and data_path is None:
        raise ValueError("engine=spark builds features from a dataset folder: give data_path")
    if str(as_of) == "latest" and data_path is None:
        raise ValueError("as_of=latest needs data.path (the data's last month decides the date)")


def feature_table_customer_ids(features_path: Path, as_of: pd.Timestamp) -> np.ndarray:
    """The distinct customers a precomputed feature table holds rows of as of ``as_of``."""
    rows = pd.read_parquet(features_path, columns=["customer_id", "as_of"])
    rows = rows.loc[pd.to_datetime(rows["as_of"]) == as_of, "customer_id"]
    return np.unique(rows.to_numpy(np.int64))


def log_score_run(summary: Mapping[str, Any], tables: Mapping[str, pd.DataFrame],
                  validation_record: Mapping[str, Any], seconds: Mapping[str, float]) -> None:
    """Log a published scoring run to the active MLflow run: summary, validation, counts, timings, drift, tables."""
    import mlflow

    from bankseg.data.checked import log_record
    from bankseg.models.tracking import log_frame

    mlflow.log_dict(summary, "summary.json")
    if validation_record:
        log_record(validation_record)
    mlflow.log_metrics({f"score/{k}": float(v) for k, v in summary["counts"].items()})
    mlflow.log_metrics({f"score/seconds_{k}": float(v) for k, v in seconds.items()})
    for row in summary["drift"]:
        mlflow.log_metric(f"drift/psi_{row['model']}_{row['variable']}", float(row["psi"])
                          if row["psi"] is not None else float("nan"))
    for name, table in tables.items():
        log_frame(table, f"tables/{name}.csv")


def _checked_input(stack: ExitStack, data_path: Path, as_of: str | pd.Timestamp,
                   validation: Mapping[str, Any] | None, validate: bool, tally: Tally,
                   ) -> tuple[Path, pd.Timestamp, dict[str, Any]]:
    """Validate the dataset folder for this run: (folder of kept rows, as_of resolved and checked, record).

    ``validate=False`` (``scoring.validate=false``) skips validation: the folder is read as it is. The rejects
    join the run's rejects (stage validation) and the folder of kept rows lives as long as ``stack``.
    """
    from bankseg.data.checked import checked_dataset
    from bankseg.models.oot_split import latest_as_of

    if not validate:
        if str(as_of) == "latest":
            raise ValueError("as_of=latest needs validation (scoring.validate=true) to know the data's range")
        return data_path, pd.Timestamp(as_of).normalize(), {}
    checked = stack.enter_context(checked_dataset(data_path, validation))
    as_of = latest_as_of(checked.month_range[1]) if str(as_of) == "latest" else pd.Timestamp(as_of).normalize()
    checked.check_as_of([as_of])
    if len(checked.rejects):
        tally.rejects.append(validation_rejects(checked.rejects))
    return checked.path, as_of, checked.record()


def finish_run(
    *,
    tmp_dir: Path,
    as_of: pd.Timestamp,
    customer_ids: np.ndarray,
    tally: Tally,
    segmenter,
    version: str,
    previous: Path | str | None,
    validation: Mapping[str, Any],
    n_examples: int,
    engine: str,
    run_id: str,
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Write rejects, drift, migration and audit files; check in = out + rejects; return (summary, tables)."""
    from bankseg.segments import tier_grid

    if tally.feature_sample:
        sample = pd.concat(tally.feature_sample, ignore_index=True).sort_values("customer_id", ignore_index=True)
        pq.write_table(pa.Table.from_pandas(sample, preserve_index=False), tmp_dir / FEATURE_SAMPLE_FILE)
    rejects = pd.concat([empty_rejects(), *tally.rejects], ignore_index=True)
    rejects = rejects.sort_values(["stage", "table", "customer_id", "row"], kind="stable", ignore_index=True)
    pq.write_table(pa.Table.from_pandas(rejects, preserve_index=False), tmp_dir / "rejects.parquet")

    output = read_output(tmp_dir, ["customer_id", *SEGMENT_COUNT_COLUMNS, "tier_value", "persona_id"])
    customer_level = rejects["table"].eq("customers") & rejects["stage"].isin(["features", "scoring"])
    rejected_ids = rejects.loc[customer_level, "customer_id"].to_numpy(dtype=np.int64)
    out_ids = output["customer_id"].to_numpy(dtype=np.int64)
    check_accounted(customer_ids, out_ids, rejected_ids, as_of, engine)

    tables: dict[str, pd.DataFrame] = {}
    drift = drift_table(segmenter.parts.drift_reference, sum_counts(tally.drift)) if tally.drift else pd.DataFrame(
        columns=["model", "kind", "variable", "psi", "flag", "n_scored"])
    drift.to_parquet(tmp_dir / "drift.parquet", index=False)
    tables["drift"] = drift
    rules = segmenter.rules
    grid = tier_grid(output["composite_tier"], output["service_tier"], rules.composite_tier, output["tier_value"])
    tables["tier_grid"] = grid
    summary: dict[str, Any] = {
        "as_of": as_of.date().isoformat(),
        "engine": engine,
        "mlflow_run_id": run_id,
        "segmenter_version": version,
        "data_source": segmenter.data_source,
        "model_versions": dict(segmenter.model_versions),
        "counts": {
            "customers_in": len(customer_ids),
            "customers_out": len(out_ids),
            "customers_rejected": len(rejected_ids),
            "rows_rejected": int((~customer_level).sum()),
        },
        "rejects_by_reason": {
            f"{s}/{t}": int(n) for (s, t), n in rejects.groupby(["stage", "table"]).size().items()
        },
        "validation": dict(validation),
        "unknown_categories": dict(sorted(tally.unknown_categories.items())),
        "segments": segment_counts(output),
        "tier_grid": grid.assign(
            composite_tier=grid["composite_tier"].astype("str"), service_tier=grid["service_tier"].astype("str")
        ).to_dict(orient="records"),
        "drift": [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in drift.to_dict(orient="records")
        ],
        "drift_reference_as_of": segmenter.parts.drift_reference.get("as_of"),
        "examples": examples(output, n_examples),
    }
    if tally.audit:
        audit = pd.concat([a for a in tally.audit if len(a)], ignore_index=True) if any(len(a) for a in tally.audit) \
            else pd.DataFrame()
        if len(audit):
            audit.to_parquet(tmp_dir / "override_audit.parquet", index=False)
        summary["overrides"] = {"in_scope": len(audit),
                                "applied": int(audit["applied"].sum()) if len(audit) else 0}
    if previous is not None:
        dims = ["customer_id", "composite_tier", "persona_id", "churn_band", "quadrant"]
        migration = transition_matrices(read_output(Path(previous), dims), output[dims])
        migration.to_parquet(tmp_dir / "migration.parquet", index=False)
        tables["migration"] = migration
        summary["migration"] = {
            dim: part.drop(columns="dimension").to_dict(orient="records")
            for dim, part in migration.groupby("dimension", sort=False)
        }
        summary["previous"] = Path(previous).name
    return summary, tables

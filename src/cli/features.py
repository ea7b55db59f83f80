"""bankseg-features: write the point-in-time feature table (and labels where the future exists)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
from bankseg.data.checked import CheckedDataset, checked_dataset, write_record
from bankseg.data.io import write_table
from bankseg.data.run_lock import out_dir_lock
from bankseg.features.build import build_feature_table, normalise_as_of_dates
from bankseg.features.labels import LABEL_COLUMNS, LabelSettings
from bankseg.models.tracking import private_files


@dataclass(frozen=True)
class FeatureJobResult:
    """What the job wrote and a per-as_of summary (rows, label coverage and rates)."""

    features_path: Path
    labels_path: Path | None
    summary: pd.DataFrame
    seconds: float
    validation: dict | None = None


def run_features(
    data_path: Path | str,
    as_of: str | Sequence[str] | pd.Timestamp,
    out_dir: Path | str,
    *,
    windows: Sequence[int],
    aum_products: Sequence[str],
    loan_products: Sequence[str],
    recency_cap_days: int,
    salary_day_std_scale: float,
    n_buckets: int = 1,
    engine: str = "pandas",
    spark_master: str = "local[2]",
    label_settings: LabelSettings | None = None,
    workers: int | None = 1,
    bucket_customers: int | None = None,
    plan_n_train: int = 4,
    plan_step_months: int = 3,
    validation: Mapping[str, Any] | None = None,
) -> FeatureJobResult:
    """Build features as of each date from the dataset folder and write them to ``out_dir``.

    ``as_of`` may also be the keyword ``plan`` (the training dates and the out-of-time date that
    ``bankseg-train`` plans from the data, :func:`bankseg.models.oot_split.plan_as_of_dates`) or ``latest``
    (the first day after the data). Writes ``features.parquet`` (keys and features) and, when
    ``label_settings`` is given and at least one label exists (its future window is in the data),
    ``labels.parquet`` (customer_id, as_of, label_*). The folder is validated first (``validation``: the
    conf/validation settings): ``rejects.parquet`` and ``summary.json`` (per-as_of rows and the validation
    record: counts, warnings, reject reasons) go to ``out_dir`` too, and an as_of outside the data's range is
    refused before anything is built.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with checked_dataset(data_path, validation, work_dir=out_dir) as checked:
        dates = _expand_keywords(
            as_of, checked, horizon_months=(label_settings or LabelSettings()).longest_horizon_months,
            history_months=max(windows), n_train=plan_n_train, step_months=plan_step_months,
        )
        checked.check_as_of(dates)
        table = build_feature_table(
            checked.path,
            dates,
            windows=windows,
            aum_products=aum_products,
            loan_products=loan_products,
            recency_cap_days=recency_cap_days,
            salary_day_std_scale=salary_day_std_scale,
            n_buckets=n_buckets,
            engine=engine,
            spark_master=spark_master,
            label_settings=label_settings,
            workers=workers,
            bucket_customers=bucket_customers,
        )
    label_columns = [c for c in LABEL_COLUMNS if c in table.columns]
    features_path = write_table(table.drop(columns=label_columns), out_dir, "features")
    labels_path = None
    if label_columns and table[label_columns].notna().any().any():
        labels_path = write_table(table[["customer_id", "as_of", *label_columns]], out_dir, "labels")
    summary = summarise(table, label_columns)
    record = checked.record()
    write_record({"as_of": summary.reset_index().assign(as_of=lambda d: d["as_of"].astype("str"))
                  .to_dict(orient="records"), "validation": record}, out_dir / "summary.json")
    return FeatureJobResult(features_path, labels_path, summary, time.perf_counter() - started, record)


def _expand_keywords(as_of, checked: CheckedDataset, **plan_kwargs) -> list[pd.Timestamp]:
    """Dates for ``as_of``: the keywords ``plan`` / ``latest`` resolved on the data's range, else the dates given."""
    values = [as_of] if isinstance(as_of, str | pd.Timestamp) else list(as_of)
    if len(values) == 1 and str(values[0]) in ("plan", "latest"):
        from bankseg.models.oot_split import expand_as_of

        first, last = checked.month_range
        return expand_as_of(str(values[0]), first, last, **plan_kwargs)
    return normalise_as_of_dates(values)


def summarise(table: pd.DataFrame, label_columns: Sequence[str]) -> pd.DataFrame:
    """Return per as_of: customers, and for each label how many are known and the positive rate."""
    groups = table.groupby("as_of", sort=True)
    summary = groups.size().rename("customers").to_frame()
    for column in label_columns:
        summary[f"{column}_known"] = groups[column].count()
        summary[f"{column}_rate"] = groups[column].mean().round(4)
    summary["features"] = len(table.columns) - 2 - len(label_columns)
    return summary


def _as_of_values(value) -> list[str]:
    if OmegaConf.is_list(value):
        return [str(v) for v in value]
    return [str(value)]


def features_job(cfg: DictConfig) -> FeatureJobResult:
    """Unpack the composed ``features`` config, run :func:`run_features` and print its summary."""
    label_settings = label_settings_from(cfg) if cfg.with_labels else None
    kwargs = feature_kwargs_from(cfg, engine=str(cfg.engine))
    # a second run into out_dir refuses instead of mixing files; the feature table is private to the user
    with out_dir_lock(cfg.out_dir, "features"), private_files():
        result = run_features(
            cfg.data.path,
            _as_of_values(cfg.as_of),
            cfg.out_dir,
            **kwargs,
            label_settings=label_settings,
            plan_n_train=int(cfg.as_of_plan.n_train),
            plan_step_months=int(cfg.as_of_plan.step_months),
            validation=plain(cfg.validation) if "validation" in cfg else None,
        )
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(result.summary.to_string())
    print(f"features -> {result.features_path}")
    print(f"labels   -> {result.labels_path or 'not written (no future window in the data)'}")
    if result.validation and (result.validation["warnings"] or result.validation["rows_rejected"]):
        print(f"validation: {result.validation['rows_rejected']} rows set aside (rejects.parquet), warnings:")
        for warning in result.validation["warnings"]:
            print(f"  - {warning}")
    workers = f", {kwargs['workers']} workers" if cfg.engine == "pandas" else ""
    print(f"{int(np.sum(result.summary['customers']))} rows in {result.seconds:.1f} s (engine={cfg.engine}{workers})")
    return result


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="features")
def main(cfg: DictConfig) -> None:
    features_job(cfg)


if __name__ == "__main__":
    main()

"""bankseg-features: write the point-in-time feature table (and labels where the future exists)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.cli.settings import feature_kwargs_from, label_settings_from
from bankseg.data.io import table_path, write_table
from bankseg.features.build import build_feature_table, normalise_as_of_dates
from bankseg.features.labels import LABEL_COLUMNS, LabelSettings


@dataclass(frozen=True)
class FeatureJobResult:
    """What the job wrote and a per-as_of summary (rows, label coverage and rates)."""

    features_path: Path
    labels_path: Path | None
    summary: pd.DataFrame
    seconds: float


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
) -> FeatureJobResult:
    """Build features as of each date from the dataset folder and write them to ``out_dir``.

    ``as_of`` may also be the keyword ``plan`` (the training dates and the out-of-time date that
    ``bankseg-train`` plans from the data, :func:`bankseg.models.oot_split.plan_as_of_dates`) or ``latest``
    (the first day after the data). Writes ``features.parquet`` (keys and features) and, when
    ``label_settings`` is given and at least one label exists (its future window is in the data),
    ``labels.parquet`` (customer_id, as_of, label_*).
    """
    data_path = Path(data_path)
    if not data_path.is_dir():
        raise FileNotFoundError(f"data.path {data_path} is not a dataset folder (run bankseg-simulate first?)")
    started = time.perf_counter()
    dates = _expand_keywords(
        as_of, data_path, horizon_months=(label_settings or LabelSettings()).longest_horizon_months,
        history_months=max(windows), n_train=plan_n_train, step_months=plan_step_months,
    )
    table = build_feature_table(
        data_path,
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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    label_columns = [c for c in LABEL_COLUMNS if c in table.columns]
    features_path = write_table(table.drop(columns=label_columns), out_dir, "features")
    labels_path = None
    if label_columns and table[label_columns].notna().any().any():
        labels_path = write_table(table[["customer_id", "as_of", *label_columns]], out_dir, "labels")
    summary = summarise(table, label_columns)
    return FeatureJobResult(features_path, labels_path, summary, time.perf_counter() - started)


def _expand_keywords(as_of, data_path: Path, **plan_kwargs) -> list[pd.Timestamp]:
    """Dates for ``as_of``: the keywords ``plan`` / ``latest`` resolved on the data, else the dates given."""
    values = [as_of] if isinstance(as_of, str | pd.Timestamp) else list(as_of)
    if len(values) == 1 and str(values[0]) in ("plan", "latest"):
        from bankseg.models.oot_split import expand_as_of

        months = _balance_months(data_path)
        return expand_as_of(str(values[0]), months.min(), months.max(), **plan_kwargs)
    return normalise_as_of_dates(values)


def _balance_months(data_path: Path) -> pd.Series:
    path = table_path(data_path, "balances")
    if path is None:
        raise FileNotFoundError(f"dataset folder {data_path}: table 'balances' is missing")
    return pd.read_parquet(path, columns=["month"])["month"]


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
    result = run_features(
        cfg.data.path,
        _as_of_values(cfg.as_of),
        cfg.out_dir,
        **kwargs,
        label_settings=label_settings,
        plan_n_train=int(cfg.as_of_plan.n_train),
        plan_step_months=int(cfg.as_of_plan.step_months),
    )
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(result.summary.to_string())
    print(f"features -> {result.features_path}")
    print(f"labels   -> {result.labels_path or 'not written (no future window in the data)'}")
    workers = f", {kwargs['workers']} workers" if cfg.engine == "pandas" else ""
    print(f"{int(np.sum(result.summary['customers']))} rows in {result.seconds:.1f} s (engine={cfg.engine}{workers})")
    return result


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="features")
def main(cfg: DictConfig) -> None:
    features_job(cfg)


if __name__ == "__main__":
    main()

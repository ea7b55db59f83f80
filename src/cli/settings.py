"""Turn the config groups that several jobs share into typed arguments (the only place that reads them)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from bankseg.data.schema import DEFAULT_AUM_PRODUCTS, DEFAULT_LOAN_PRODUCTS
from bankseg.features.labels import LabelSettings


def plain(node) -> Any:
    """A config node as plain Python containers (resolved), for logging and for the job functions."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def product_lists(data: DictConfig) -> tuple[list[str], list[str]]:
    """The dataset's AUM and loan products (flat snapshots have none: the schema defaults stand in)."""
    return (list(data.get("aum_products") or DEFAULT_AUM_PRODUCTS), list(data.get("loan_products") or DEFAULT_LOAN_PRODUCTS))


def label_settings_from(cfg: DictConfig) -> LabelSettings:
    """LabelSettings from the ``labels`` group and the dataset's product lists."""
    labels = cfg.labels
    aum, loans = product_lists(cfg.data)
    return LabelSettings(
        churn_horizon_months=int(labels.churn.horizon_months),
        churn_drop_share=float(labels.churn.drop_share),
        churn_min_aum_adb=float(labels.churn.min_aum_adb),
        churn_confirm_months=int(labels.churn.confirm_months),
        churn_draining_share=float(labels.churn.draining_share),
        churn_month_end_share=float(labels.churn.month_end_share),
        conversion_horizon_months=int(labels.conversion.horizon_months),
        conversion_target_value=float(labels.conversion.target_value),
        conversion_loan_share=float(labels.conversion.loan_share),
        conversion_count_new_loans=bool(labels.conversion.count_new_loans),
        upgrade_horizon_months=int(labels.upgrade.horizon_months),
        upgrade_products=tuple(labels.upgrade.products),
        aum_products=tuple(aum),
        loan_products=tuple(loans),
    )


def feature_kwargs_from(cfg: DictConfig, engine: str = "pandas") -> dict[str, Any]:
    """Keyword arguments of :func:`bankseg.features.build.build_feature_table` from ``features`` and ``data``."""
    feats = cfg.features
    aum, loans = product_lists(cfg.data)
    return {
        "windows": [int(w) for w in feats.windows],
        "aum_products": aum,
        "loan_products": loans,
        "recency_cap_days": int(feats.recency_cap_days),
        "salary_day_std_scale": float(feats.salary_day_std_scale),
        "n_buckets": int(feats.n_buckets),
        "engine": engine,
        "spark_master": str(feats.spark_master),
    }


def command_line_overrides() -> list[str]:
    """The job's ``key=value`` overrides from the command line (none outside a Hydra run, e.g. under compose)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def data_config(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """The ``data`` group as a plain dict, where ``data.<key>={}`` / ``data.<key>=[]`` *empties* the key.

    Hydra merges a mapping given on the command line into the configured one, so ``data.rename={}`` would
    keep every configured rename; a user writing it means "no renames". ``overrides`` defaults to the
    command line of the running job.
    """
    data = plain(cfg.data)
    for override in command_line_overrides() if overrides is None else overrides:
        key, _, value = override.partition("=")
        if key.startswith("data.") and key.count(".") == 1 and value.strip() in ("{}", "[]"):
            data[key.removeprefix("data.")] = {} if value.strip() == "{}" else []
    return data


def model_job_args(cfg: DictConfig) -> dict[str, Any]:
    """The arguments train, tune and promote share: the model, its data, features, labels, dates, store."""
    return {
        "model_cfg": plain(cfg.model),
        "data_cfg": data_config(cfg),
        "feature_kwargs": feature_kwargs_from(cfg),
        "label_settings": label_settings_from(cfg),
        "as_of_cfg": plain(cfg.as_of),
        "mlflow_cfg": plain(cfg.mlflow),
        "config": plain(cfg),
        "features_path": cfg.features_path,
    }

"""Turn the config groups that several jobs share into typed arguments (the only place that reads them)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from bankseg.data.schema import DEFAULT_AUM_PRODUCTS, DEFAULT_LOAN_PRODUCTS
from bankseg.features.labels import LabelSettings

log = logging.getLogger(__name__)


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
        "workers": workers_from(cfg),
        # a training run logged before these settings existed has no bucket_customers (remember_training_data)
        "bucket_customers": None if feats.get("bucket_customers") is None else int(feats.bucket_customers),
    }


def workers_from(cfg: DictConfig) -> int:
    """The job's ``workers`` setting (conf/compute/default.yaml; null or 0 = every available core)."""
    from bankseg.parallel import resolve_workers

    return resolve_workers(cfg.get("workers"))


def command_line_overrides() -> list[str]:
    """The job's ``key=value`` overrides from the command line (none outside a Hydra run, e.g. under compose)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def data_config(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """The ``data`` group as a plain dict, where ``data.<key>={}`` / ``data.<key>=[]`` *empties* the key.

    Hydra merges a mapping given on the command line into the configured one, so ``data.rename={}`` would
    keep every configured rename; a user writing it means "no renames". The key is emptied in ``cfg`` too, so
    the config the job logs (and that later jobs remember) says what the model really learned from.
    ``overrides`` defaults to the command line of the running job.
    """
    for override in command_line_overrides() if overrides is None else overrides:
        key, _, value = override.partition("=")
        if key.startswith("data.") and key.count(".") == 1 and value.strip() in ("{}", "[]"):
            with open_dict(cfg):
                OmegaConf.update(cfg, key, {} if value.strip() == "{}" else [], merge=False)
    return plain(cfg.data)


def data_source(cfg: DictConfig) -> str:
    """The data source a job works on: the data config's name (tags runs and registered versions)."""
    return str(cfg.data.name)


def registered_names(cfg: DictConfig) -> dict[str, str]:
    """Registered model names (personas, churn, conversion, upgrade, segmenter) of the job's data source."""
    from bankseg.models.registry import MODEL_NAMES, registry_name

    return {model: registry_name(cfg, model) for model in MODEL_NAMES}


def use_source_names(cfg: DictConfig) -> DictConfig:
    """Rename ``model`` / ``models.*`` ``registered_name`` for the data source (``registry.prefix``), in place.

    The logged config then shows the name the model is really registered under.
    """
    from bankseg.models.registry import source_model_name

    nodes = [cfg.model] if "model" in cfg else []
    nodes += list(cfg.models.values()) if "models" in cfg else []
    with open_dict(cfg):
        for node in nodes:
            node.registered_name = source_model_name(str(node.registered_name), str(cfg.registry.prefix))
    return cfg


def model_job_args(cfg: DictConfig) -> dict[str, Any]:
    """The arguments train, tune and promote share: the model, its data, features, labels, dates, store."""
    use_source_names(cfg)
    data = data_config(cfg)  # before the config is logged: an emptied data.<key> is logged empty
    return {
        "model_cfg": plain(cfg.model),
        "data_cfg": data,
        "feature_kwargs": feature_kwargs_from(cfg),
        "label_settings": label_settings_from(cfg),
        "as_of_cfg": plain(cfg.as_of),
        "mlflow_cfg": plain(cfg.mlflow),
        "config": plain(cfg),
        "features_path": cfg.features_path,
    }


# The parts of a training run's config that say what data the model learned from (and how its rows were built).
REMEMBERED_NODES = ("data", "features", "labels", "as_of", "holdout_fraction")
CONFIG_GROUPS = ("data", "features", "labels")  # `data=berka` chooses a config; `data.path=X` sets a value


def remember_training_data(cfg: DictConfig, registered: str | Sequence[str], *, alias: str | None = "champion",
                           version: str | None = None, overrides: list[str] | None = None) -> DictConfig:
    """``cfg`` with data, feature, label and split settings taken from the training run of a registered model.

    ``registered`` may list several names: the first that has the version asked for is used.

    So ``bankseg-export`` after ``bankseg-train data.path=X`` reads X again. Only settings the job's own config
    has are taken, and anything set on the command line (``overrides``, default: this job's) still wins; the log
    says which data path was used and where it came from. Returns ``cfg`` unchanged when the model is not
    registered yet (the job then reports that itself); raises ValueError when the run was trained on another
    data source than ``data=`` names.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bankseg.models.tracking import configure_tracking, logged_config

    configure_tracking(**plain(cfg.mlflow))
    candidates = [registered] if isinstance(registered, str) else list(registered)
    found = _first_version(candidates, alias, version)
    if found is None:
        log.info("data.path=%s (this job's config: no %s of %s is registered to remember it from)",
                 cfg.data.path, version or alias, " / ".join(candidates))
        return cfg
    name, mv = found
    recorded = logged_config(mv.run_id)
    source = (recorded.get("data") or {}).get("name")
    if source is not None and source != cfg.data.name:
        raise ValueError(f"{name} version {mv.version} was trained on data source {source!r}, not "
                         f"{cfg.data.name!r}: choose data={source} or another registry.prefix")
    given = OverridesParser.create().parse_overrides(command_line_overrides() if overrides is None else overrides)
    given = [o for o in given if o.key_or_group.split(".")[0] in REMEMBERED_NODES and not o.is_delete()
             and ("." in o.key_or_group or o.key_or_group not in CONFIG_GROUPS)]
    with open_dict(cfg):
        for node in REMEMBERED_NODES:
            if node in cfg and node in recorded:
                cfg[node] = recorded[node]
        for override in given:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False, force_add=True)
    kept = [o.key_or_group for o in given]
    origin = "set on the command line" if "data.path" in kept else f"the training run of {name} v{mv.version}"
    log.info("data.path=%s (%s); features, labels and as_of settings from the training run of %s v%s (run %s)%s",
             cfg.data.path, origin, name, mv.version, mv.run_id,
             f", except {', '.join(kept)} set on the command line" if kept else "")
    return cfg


def _first_version(names: Sequence[str], alias: str | None, version: str | None):
    """(name, version) of the first registered model in ``names`` with that version or alias, else None."""
    from bankseg.models.registry import find_version

    for name in names:
        mv = find_version(name, alias) if version is None else mlflow_version(name, version)
        if mv is not None and mv.run_id:
            return name, mv
    return None


def mlflow_version(registered: str, version: str):
    """One version of a registered model (MLflow's record), or None when there is no such version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient().get_model_version(registered, str(version))
    except MlflowException:
        return None

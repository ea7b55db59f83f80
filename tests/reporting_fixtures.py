"""Shared, session-cached inputs of the report tests: a tiny simulated bank with a trained churn model.

Training is the costly part (features for five as_of dates, then LightGBM), so the model and browser tests share
one trained bank per test session (cached here, in the session's pytest temporary folder).
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

from bankseg.cli import CONFIG_DIR

_CACHE: dict[str, dict] = {}

N_CUSTOMERS = 2000  # the churn label (not already draining, confirmed) fires for about 1% of customers a quarter
N_MONTHS = 30
# A small model keeps SHAP and training fast; the report does not need a good one.
MODEL_OVERRIDES = ["model.num_boost_round=60", "model.early_stopping_rounds=15", "model.params.num_leaves=15",
                   "model.params.max_depth=4", "model.min_isotonic_rows=100000"]


def compose_config(config_name: str, root: Path, data_path: Path, overrides: list[str] = ()):
    """The real composed config of a job, pointed at a test store and dataset."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(
            config_name=config_name,
            overrides=[f"paths.root_dir={root}", f"data.path={data_path}",
                       f"mlflow.tracking_uri=sqlite:///{root}/mlruns/mlflow.db", *overrides],
        )


def trained_churn_bank(tmp_path_factory) -> dict:
    """{"root", "data_path", "run_id", "version"}: a simulated bank and a registered churn model (cached)."""
    if "bank" in _CACHE:
        return _CACHE["bank"]
    from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
    from bankseg.data.simulate import SimulatorParams, write_simulated_bank
    from bankseg.jobs.train import run_train

    root = tmp_path_factory.mktemp("report_bank")
    data_path = root / "bank"
    write_simulated_bank(SimulatorParams(n_customers=N_CUSTOMERS, n_months=N_MONTHS, seed=21), data_path,
                         progress=False)
    cfg = compose_config("train", root, data_path, MODEL_OVERRIDES)
    result = run_train(
        model_cfg=plain(cfg.model), data_cfg=plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
        label_settings=label_settings_from(cfg), as_of_cfg=plain(cfg.as_of), mlflow_cfg=plain(cfg.mlflow),
        config=plain(cfg),
    )
    _CACHE["bank"] = {"root": root, "data_path": data_path, "run_id": result.run_id, "version": result.version}
    return _CACHE["bank"]

"""Shared fixtures: one small trained world (simulated bank, four registered models, exported segmenter).

``trained_bank`` is session-scoped so scoring and report tests share one world: 2,500 customers x 30 months,
a temporary SQLite MLflow store, the four models trained and registered with the real job function
(bankseg.jobs.train.run_train on the composed conf/train.yaml, LightGBM on one thread, a small persona k range),
and bankseg-segmenter exported from them (bankseg.jobs.export.run_export on conf/export.yaml).
"""

from __future__ import annotations

import os

# LightGBM / OpenMP threads spin-wait by default; on the shared 2-core machine that made training 10-30x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

N_CUSTOMERS = 2500
N_MONTHS = 30
SEED = 7


@dataclass(frozen=True)
class TrainedBank:
    """A simulated bank with its trained, registered models and the exported segmenter."""

    data_path: Path
    root: Path
    mlflow_cfg: dict[str, Any]
    feature_kwargs: dict[str, Any]
    segments_cfg: dict[str, Any]
    train_versions: dict[str, str]
    segmenter_version: str
    reference_as_of: str

    def configure(self) -> None:
        """Point MLflow at this world's store (other tests may have moved it)."""
        from bankseg.models.tracking import configure_tracking

        configure_tracking(**self.mlflow_cfg)


def compose_config(name: str, overrides: list[str]):
    """A job's config composed by Hydra from conf/ with overrides (no Hydra run needed)."""
    from hydra import compose, initialize_config_dir

    from bankseg.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(name, overrides=overrides)


@pytest.fixture(scope="session")
def trained_bank(tmp_path_factory) -> TrainedBank:
    from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
    from bankseg.data.simulate import SimulatorParams, write_simulated_bank
    from bankseg.jobs.export import run_export
    from bankseg.jobs.train import run_train

    root = tmp_path_factory.mktemp("trained_bank")
    data = root / "bank"
    write_simulated_bank(SimulatorParams(n_customers=N_CUSTOMERS, n_months=N_MONTHS, seed=SEED), data, progress=False)
    # one worker process: the world stays light on the shared machine; the parallel tests ask for workers=2
    common = [f"data.path={data}", f"mlflow.tracking_uri=sqlite:///{root}/mlruns/mlflow.db", f"paths.root_dir={root}",
              "workers=1"]
    versions = {}
    for model in ("personas", "churn", "conversion", "upgrade"):
        overrides = [*common, f"model={model}"]
        if model == "personas":
            overrides += ["model.k_range=[4,5]", "model.n_bootstrap=0", "model.n_init=1"]
        else:
            overrides += ["model.params.num_threads=1"]
        cfg = compose_config("train", overrides)
        result = run_train(
            model_cfg=plain(cfg.model), data_cfg=plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
            label_settings=label_settings_from(cfg), as_of_cfg=plain(cfg.as_of), mlflow_cfg=plain(cfg.mlflow),
            config=plain(cfg), register=True, use_ground_truth=False,
        )
        versions[model] = result.version
    cfg = compose_config("export", common)
    exported = run_export(
        data_path=cfg.data.path, feature_kwargs=feature_kwargs_from(cfg), segments_cfg=plain(cfg.segments),
        model_cfgs=plain(cfg.models), mlflow_cfg=plain(cfg.mlflow), config=plain(cfg),
        source_alias="champion", reference_as_of=None, drift_cfg=plain(cfg.scoring.drift),
    )
    return TrainedBank(
        data_path=data, root=root, mlflow_cfg=plain(cfg.mlflow), feature_kwargs=feature_kwargs_from(cfg),
        segments_cfg=plain(cfg.segments), train_versions=versions, segmenter_version=exported.version,
        reference_as_of=exported.reference_as_of,
    )


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session for the whole test session."""
    pytest.importorskip("pyspark")
    from bankseg.features.spark import get_spark

    session = get_spark("local[2]", app_name="bankseg-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()

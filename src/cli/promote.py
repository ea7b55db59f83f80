"""bankseg-promote: challenger -> champion if it passes the gate (model=personas|churn|conversion|upgrade)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.cli.settings import model_job_args, plain, remember_training_data, use_source_names
from bankseg.jobs.promote import run_promote
from bankseg.models.registry import PromotionGate


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="promote")
def main(cfg: DictConfig) -> None:
    gate = PromotionGate(**plain(cfg.promotion))
    # judged on the data (path, features, labels) the challenger learned from unless set on the command line
    cfg = remember_training_data(use_source_names(cfg), str(cfg.model.registered_name), alias="challenger")
    decision = run_promote(
        **model_job_args(cfg),
        gate=gate,
        holdout_fraction=float(cfg.holdout_fraction),
    )
    verdict = "PROMOTED" if decision.promoted else "kept the champion"
    print(f"{cfg.model.registered_name}: {verdict} — {decision.reason}")


if __name__ == "__main__":
    main()

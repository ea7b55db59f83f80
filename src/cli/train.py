"""bankseg-train: train one model (model=personas|churn|conversion|upgrade), evaluate, log, register."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.cli.settings import model_job_args, plain, registered_names
from bankseg.jobs.train import run_train


def _report_request(cfg: DictConfig) -> dict | None:
    """What run_train needs to build the model review report, when build_report is on."""
    if not cfg.build_report:
        return None
    from bankseg.reports.model_report import ModelReportSettings

    return {"settings": ModelReportSettings.from_dict(plain(cfg.reports.model)), "out_dir": cfg.report_dir,
            "personas_model": registered_names(cfg)["personas"]}


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    result = run_train(
        **model_job_args(cfg),
        register=bool(cfg.register),
        use_ground_truth=bool(cfg.use_ground_truth),
        holdout_fraction=float(cfg.holdout_fraction),
        report=_report_request(cfg),
    )
    if cfg.result_file:
        result.write(cfg.result_file)
    print(result.render())
    return result.metrics.get("oot/auc")


if __name__ == "__main__":
    main()

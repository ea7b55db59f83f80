"""bankseg-report: report=model (model review of model=churn|conversion|upgrade) or report=segments."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.cli.settings import (
    data_config,
    feature_kwargs_from,
    label_settings_from,
    plain,
    remember_training_data,
    use_source_names,
)
from bankseg.jobs.report import ReportResult, run_model_report, run_segment_report
from bankseg.reports.model_report import ModelReportSettings
from bankseg.reports.segment_report import SegmentReportSettings
from bankseg.segments import load_segment_rules


def report_job(cfg: DictConfig) -> ReportResult:
    """Build the report ``cfg.report`` asks for (the console script's work; tests call it with a composed cfg)."""
    mlflow_cfg = plain(cfg.mlflow) if cfg.log_to_mlflow else None
    if cfg.report == "model":
        # the data, features and labels the reported version learned from, unless set on the command line
        version = None if cfg.version is None else str(cfg.version)
        cfg = remember_training_data(use_source_names(cfg), str(cfg.model.registered_name),
                                     alias=None if version else str(cfg.alias), version=version)
        return run_model_report(
            model_cfg=plain(cfg.model),
            data_path=cfg.data.path,
            feature_kwargs=feature_kwargs_from(cfg),
            label_settings=label_settings_from(cfg),
            mlflow_cfg=plain(cfg.mlflow),
            settings=ModelReportSettings.from_dict(plain(cfg.reports.model)),
            out_dir=cfg.out_dir,
            alias=cfg.alias,
            version=None if cfg.version is None else str(cfg.version),
            compare=bool(cfg.compare),
            personas_model=cfg.personas_model,
            log_to_mlflow=bool(cfg.log_to_mlflow),
            features_path=cfg.features_path,
            data_cfg=data_config(cfg),
            validation=plain(cfg.validation) if "validation" in cfg else None,
        )
    if cfg.report == "segments":
        if cfg.scoring_dir is None:
            raise ValueError("report=segments needs scoring_dir=<a bankseg-score out_dir>")
        rules = load_segment_rules(plain(cfg.segments))
        return run_segment_report(
            scoring_dir=Path(cfg.scoring_dir),
            previous_dir=None if cfg.previous_dir is None else Path(cfg.previous_dir),
            labels_zh=rules.labels_zh(),
            tier_names=list(rules.composite_tier.names),
            settings=SegmentReportSettings.from_dict(plain(cfg.reports.segments)),
            out_dir=cfg.out_dir,
            data_path=cfg.data.path,
            feature_kwargs=feature_kwargs_from(cfg),
            top_share=rules.pareto.top_share,
            n_pareto_groups=rules.pareto.n_groups,
            mlflow_cfg=mlflow_cfg,
            config=plain(cfg),
        )
    raise ValueError(f"report must be 'model' or 'segments', got {cfg.report!r}")


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="report")
def main(cfg: DictConfig) -> None:
    print(report_job(cfg).render())


if __name__ == "__main__":
    main()

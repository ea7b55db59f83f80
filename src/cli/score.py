"""bankseg-score: score every customer as of a date with the registered segmenter (pandas or Spark)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.cli.settings import data_source, feature_kwargs_from, plain, registered_names
from bankseg.jobs.score import score_job


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="score")
def main(cfg: DictConfig) -> None:
    result = score_job(
        as_of=str(cfg.as_of),
        out_dir=cfg.out_dir,
        mlflow_cfg=plain(cfg.mlflow),
        config=plain(cfg),
        data_path=cfg.data.path,
        features_path=cfg.features_path,
        feature_kwargs=feature_kwargs_from(cfg),
        engine=str(cfg.engine),
        model_alias=str(cfg.model_alias),
        model_version=cfg.model_version,
        previous=cfg.previous,
        scoring_cfg=plain(cfg.scoring),
        spark_master=str(cfg.features.spark_master),
        chunk_customers=int(cfg.chunk_customers),
        segmenter_name=registered_names(cfg)["segmenter"],
        data_source=data_source(cfg),
    )
    print(result.render())


if __name__ == "__main__":
    main()

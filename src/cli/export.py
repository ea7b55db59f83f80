"""bankseg-export: assemble the champion models and segment rules into bankseg-segmenter and register it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.cli.settings import (
    data_source,
    feature_kwargs_from,
    plain,
    registered_names,
    remember_training_data,
    use_source_names,
)
from bankseg.jobs.export import run_export


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="export")
def main(cfg: DictConfig) -> None:
    names = registered_names(cfg)
    # data.path and the feature settings default to those the first propensity champion (personas where none)
    # learned from
    first = [names[m] for m in cfg.propensity_models]
    cfg = remember_training_data(use_source_names(cfg), [*first, names["personas"]],
                                 alias=str(cfg.source_alias))
    result = run_export(
        data_path=cfg.data.path,
        feature_kwargs=feature_kwargs_from(cfg),
        segments_cfg=plain(cfg.segments),
        model_cfgs=plain(cfg.models),
        mlflow_cfg=plain(cfg.mlflow),
        config=plain(cfg),
        source_alias=str(cfg.source_alias),
        reference_as_of=cfg.reference_as_of,
        features_path=cfg.get("features_path"),
        drift_cfg=plain(cfg.scoring.drift),
        model_names=names,
        data_source=data_source(cfg),
        propensity_models=list(cfg.propensity_models),
    )
    if cfg.result_file:
        record = Path(cfg.result_file)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(dataclasses.asdict(result), indent=2, sort_keys=True) + "\n")
    print(result.render())


if __name__ == "__main__":
    main()

"""bankseg-tune: Optuna study for one propensity model (model=churn hpo.n_trials=50)."""

from __future__ import annotations

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from bankseg.cli import CONFIG_DIR, CONFIG_DIR_VARIABLE, HYDRA_VERSION_BASE, on_search_path
from bankseg.cli.settings import model_job_args, plain
from bankseg.jobs.tune import run_tune


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="tune")
def main(cfg: DictConfig) -> float:
    job_overrides = list(HydraConfig.get().overrides.task)

    def compose_trial(overrides: list[str]) -> dict:
        """This job's config with the trial's overrides on top, composed by Hydra."""
        return plain(compose(config_name="tune", overrides=[*job_overrides, *overrides]))

    result = run_tune(
        **model_job_args(cfg),
        hpo_cfg=plain(cfg.hpo),
        compose=compose_trial,
    )
    print(result.render())
    if result.experiment_file is not None and not on_search_path(result.experiment_file):
        print(f"{result.experiment_file.parent} is on no job's search path: export "
              f"{CONFIG_DIR_VARIABLE}={result.experiment_file.parent.parent} to train with +experiment="
              f"{result.experiment_file.stem}")
    return result.best_value


if __name__ == "__main__":
    main()

"""bankseg-simulate: write a simulated bank as a dataset folder, validate it, print a summary."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.data.simulate import SimulatorParams
from bankseg.jobs.simulate import run_simulate

log = logging.getLogger(__name__)


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="simulate")
def main(cfg: DictConfig) -> None:
    params = SimulatorParams(**OmegaConf.to_container(cfg.simulator, resolve=True))
    validation = OmegaConf.to_container(cfg.validation, resolve=True) if cfg.validate else None
    run_simulate(params, Path(cfg.out_dir), validation=validation)


if __name__ == "__main__":
    main()

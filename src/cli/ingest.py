"""bankseg-ingest: convert a real data source (data=berka) into a canonical dataset folder and validate it."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from bankseg.cli import CONFIG_DIR, HYDRA_VERSION_BASE
from bankseg.cli.settings import data_config, plain
from bankseg.jobs.ingest import IngestSummary, run_ingest


def ingest_job(cfg: DictConfig) -> IngestSummary:
    """The console script's work (tests call it with a composed cfg)."""
    return run_ingest(data_config(cfg), plain(cfg.validation) if cfg.validate else None)


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=CONFIG_DIR, config_name="ingest")
def main(cfg: DictConfig) -> None:
    print(ingest_job(cfg).render())


if __name__ == "__main__":
    main()

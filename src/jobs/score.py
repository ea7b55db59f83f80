"""The batch scoring job (bankseg-score): a plain function over typed settings; see bankseg.scoring.score."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bankseg.scoring.score import ScoreResult, run_score


def score_job(
    *,
    as_of: str,
    out_dir: Path | str,
    mlflow_cfg: Mapping[str, Any],
    config: Mapping[str, Any],
    data_path: Path | str | None,
    features_path: Path | str | None,
    feature_kwargs: Mapping[str, Any],
    engine: str,
    model_alias: str,
    model_version: str | int | None,
    previous: Path | str | None,
    scoring_cfg: Mapping[str, Any],
    spark_master: str,
    chunk_customers: int | None = None,
    progress: bool = True,
    segmenter_name: str | None = None,
    data_source: str | None = None,
) -> ScoreResult:
    """Run :func:`bankseg.scoring.score.run_score` with the ``scoring`` config group's settings.

    ``as_of="latest"`` scores as of the first day after the data's last month (all the bank knows today).
    ``config["validation"]`` (conf/validation) is how the dataset folder is validated.
    """
    return run_score(
        as_of=as_of,
        out_dir=out_dir,
        mlflow_cfg=mlflow_cfg,
        config=config,
        data_path=None if features_path else data_path,
        features_path=features_path,
        feature_kwargs=feature_kwargs,
        engine=engine,
        model_alias=model_alias,
        model_version=model_version,
        previous=previous,
        chunk_customers=int(chunk_customers or scoring_cfg.get("chunk_customers", 200_000)),
        overrides_path=scoring_cfg.get("overrides_path"),
        validate=bool(scoring_cfg.get("validate", True)),
        spark_master=spark_master,
        n_examples=int(scoring_cfg.get("n_examples", 5)),
        feature_sample=int(scoring_cfg.get("feature_sample", 50_000)),
        progress=progress,
        segmenter_name=segmenter_name,
        validation=config.get("validation"),
        data_source=data_source,
    )

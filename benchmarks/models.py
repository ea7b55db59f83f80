"""Model benchmark: out-of-time AUC against the oracle, train time, and tuning time with and without pruning.

On a simulated bank (default 50,000 customers x 36 months, the product's default) this trains the persona model
and the three propensity models with the real training job, reports per model the OOT AUC, the oracle AUC (what
a model knowing the simulator's true states and hazards reaches) and their ratio, the persona ARI against the
planted personas, and runs the churn Optuna study twice with the same seed and trial count: once with the
median pruner, once without. Goals (issue 4): churn OOT AUC >= 0.95 x oracle; pruning cuts tuning time by >= 30%
at no loss of best AUC; persona ARI >= 0.6.

    python benchmarks/models.py                           # 50k customers, 20 trials each way
    python benchmarks/models.py --data data/simulated     # reuse a simulated bank (e.g. from make run)
    python benchmarks/models.py --n-customers 10000 --trials 10

Prints the figures and writes them to benchmarks/results/models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hydra import compose, initialize_config_dir

from bankseg.cli import CONFIG_DIR
from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
from bankseg.data.simulate import SimulatorParams, write_simulated_bank
from bankseg.jobs.train import load_model_data, run_train
from bankseg.jobs.tune import run_tune

RESULTS = Path(__file__).resolve().parent / "results" / "models.json"


def _compose(job: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name=job, overrides=overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="an existing simulated dataset folder (else one is simulated)")
    parser.add_argument("--n-customers", type=int, default=50_000)
    parser.add_argument("--n-months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bankseg-bench-models-"))
    data = args.data
    if data is None:
        data = work / "bank"
        started = time.perf_counter()
        write_simulated_bank(
            SimulatorParams.from_dict({"n_customers": args.n_customers, "n_months": args.n_months, "seed": args.seed}),
            data,
        )
        print(f"simulated {args.n_customers:,} customers x {args.n_months} months in {time.perf_counter() - started:.0f} s")
    common = [f"data.path={data}", f"mlflow.tracking_uri=sqlite:///{work}/mlruns/mlflow.db", f"paths.root_dir={work}",
              "build_report=false"]

    # features and labels once, shared by every model (as the DVC pipeline does)
    cfg = _compose("train", [*common, "model=churn"])
    started = time.perf_counter()
    prepared = load_model_data(plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
                               label_settings=label_settings_from(cfg), as_of_cfg=plain(cfg.as_of))
    features_dir = work / "features"
    features_dir.mkdir()
    frame = prepared.frame.drop(columns=["split"])
    label_columns = [c for c in frame.columns if c.startswith("label_")]
    frame.drop(columns=label_columns).to_parquet(features_dir / "features.parquet")
    frame[["customer_id", "as_of", *label_columns]].to_parquet(features_dir / "labels.parquet")
    feature_seconds = time.perf_counter() - started
    print(f"training frame: {len(frame):,} rows in {feature_seconds:.0f} s; plan {prepared.description}")

    results: dict = {
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "data": str(data),
        "n_customers": args.n_customers if args.data is None else None,
        "training_frame_rows": len(frame),
        "feature_seconds": round(feature_seconds, 1),
        "models": {},
    }
    for model in ("personas", "churn", "conversion", "upgrade"):
        cfg = _compose("train", [*common, f"model={model}", f"features_path={features_dir}"])
        started = time.perf_counter()
        result = run_train(
            model_cfg=plain(cfg.model), data_cfg=plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
            label_settings=label_settings_from(cfg), as_of_cfg=plain(cfg.as_of), mlflow_cfg=plain(cfg.mlflow),
            config=plain(cfg), features_path=features_dir,
        )
        seconds = time.perf_counter() - started
        keep = ("oot/auc", "oot/oracle_auc", "oot/auc_vs_oracle", "oot/ks", "oot/n", "oot/base_rate",
                "train/best_iteration", "train/k", "train/ari_vs_planted", "train/stability_ari")
        entry = {k: round(v, 4) for k, v in result.metrics.items() if k in keep}
        entry["train_seconds"] = round(seconds, 1)
        results["models"][model] = entry
        print(model, json.dumps(entry))

    tuning = {}
    for pruner in ("median", "none"):
        cfg = _compose("tune", [*common, "model=churn", f"hpo.n_trials={args.trials}", f"hpo.pruner.kind={pruner}",
                                f"features_path={features_dir}"])

        def compose_trial(overrides: list[str], _base=(*common, "model=churn", f"hpo.pruner.kind={pruner}")):
            return plain(_compose("tune", [*_base, *overrides]))

        result = run_tune(
            model_cfg=plain(cfg.model), hpo_cfg=plain(cfg.hpo), data_cfg=plain(cfg.data),
            feature_kwargs=feature_kwargs_from(cfg), label_settings=label_settings_from(cfg),
            as_of_cfg=plain(cfg.as_of), mlflow_cfg=plain(cfg.mlflow), config=plain(cfg), compose=compose_trial,
            write_experiment_file=False, features_path=features_dir,
        )
        tuning[pruner] = {"seconds": round(result.seconds, 1), "best_val_auc": round(result.best_value, 4),
                          "n_complete": result.n_complete, "n_pruned": result.n_pruned}
        print("tuning", pruner, tuning[pruner])
    tuning["time_saved_by_pruning"] = round(1 - tuning["median"]["seconds"] / tuning["none"]["seconds"], 3)
    tuning["best_auc_change"] = round(tuning["median"]["best_val_auc"] - tuning["none"]["best_val_auc"], 4)
    results["tuning_churn"] = {"trials": args.trials, **tuning}
    results["goals"] = {
        "churn_auc_vs_oracle>=0.95": results["models"]["churn"].get("oot/auc_vs_oracle", 0) >= 0.95,
        "pruning_saves>=30%": tuning["time_saved_by_pruning"] >= 0.30,
        "pruning_no_auc_loss": tuning["best_auc_change"] >= -0.002,
        "persona_ari>=0.6": results["models"]["personas"].get("train/ari_vs_planted", 0) >= 0.6,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["goals"], indent=2))
    print(f"written {args.results}")


if __name__ == "__main__":
    main()

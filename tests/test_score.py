"""The batch scoring job: in = out + rejects on planted bad rows, idempotence, atomic output, overrides, migration,
drift."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from bankseg.scoring import score as score_module
from bankseg.scoring.migration import drift_counts, drift_table, reference_distributions, transition_matrices
from bankseg.scoring.score import read_output, run_score

pytestmark = pytest.mark.slow
AS_OF = "2025-03-01"
LATER = "2025-06-01"
NEW_CUSTOMER = 900_001
BAD_TXN_CUSTOMER_POSITION = 0
ORPHAN = 999_999_999


def _set(table: pa.Table, name: str, value) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, pa.array([value] * table.num_rows, table.schema.field(name).type))


def plant_bad_rows(source: Path, target: Path) -> dict:
    """Copy a dataset folder and add: a customer opened after AS_OF, a transaction with a negative amount, and an
    interaction of an unknown customer."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("ground_truth*"))
    customers = pq.read_table(target / "customers" / "part-00000.parquet")
    late = _set(_set(customers.slice(0, 1), "customer_id", NEW_CUSTOMER), "open_date",
                pd.Timestamp(AS_OF) + pd.Timedelta(days=20))
    pq.write_table(late, target / "customers" / "part-99999.parquet")
    txn = pq.read_table(target / "transactions" / "part-00000.parquet")
    # the bad row belongs to a customer still banking at AS_OF (a departed one is rejected for that reason)
    holdings = pd.read_parquet(target / "holdings")
    open_at = holdings[(holdings.opened < AS_OF) & (holdings.closed.isna() | (holdings.closed >= AS_OF))]
    first = int(np.flatnonzero(np.isin(txn["customer_id"].to_numpy(), open_at.customer_id.unique()))[0])
    bad_txn = _set(_set(txn.slice(first, 1), "txn_id", int(pc.max(txn["txn_id"]).as_py()) + 10**6), "amount", -5.0)
    bad_txn = _set(bad_txn, "ts", pd.Timestamp(AS_OF) - pd.Timedelta(days=40))
    pq.write_table(bad_txn, target / "transactions" / "part-99999.parquet")
    inter = pq.read_table(target / "interactions" / "part-00000.parquet")
    pq.write_table(_set(inter.slice(0, 1), "customer_id", ORPHAN), target / "interactions" / "part-99999.parquet")
    return {"bad_txn_customer": int(bad_txn["customer_id"][0].as_py())}


@pytest.fixture(scope="module")
def planted(trained_bank, tmp_path_factory) -> tuple[Path, dict]:
    target = tmp_path_factory.mktemp("planted") / "bank"
    return target, plant_bad_rows(trained_bank.data_path, target)


def score(trained_bank, data_path, out_dir, as_of=AS_OF, **kwargs):
    trained_bank.configure()
    kwargs.setdefault("feature_kwargs", trained_bank.feature_kwargs)
    return run_score(
        as_of=as_of, out_dir=out_dir, mlflow_cfg=trained_bank.mlflow_cfg, config={"job": "score-test"},
        data_path=data_path, chunk_customers=1000, progress=False, **kwargs,
    )


@pytest.fixture(scope="module")
def first_run(trained_bank, planted, tmp_path_factory):
    return score(trained_bank, planted[0], tmp_path_factory.mktemp("scores"))


def test_every_customer_is_scored_or_rejected_exactly_once(first_run, planted):
    data_path, facts = planted
    customers = pd.read_parquet(data_path / "customers", columns=["customer_id"])["customer_id"]
    out = read_output(first_run.run_dir)
    rejects = pd.read_parquet(first_run.run_dir / "rejects.parquet")
    customer_rejects = rejects[rejects["table"] == "customers"]
    assert len(out) + len(customer_rejects) == len(customers)
    assert set(out["customer_id"]).isdisjoint(customer_rejects["customer_id"])
    assert set(out["customer_id"]) | set(customer_rejects["customer_id"]) == set(customers)
    assert not out["customer_id"].duplicated().any()
    late = customer_rejects[customer_rejects["customer_id"] == NEW_CUSTOMER]
    assert late["stage"].tolist() == ["features"] and "as_of" in late["reason"].iloc[0]
    # Rows refused by validation are listed; their customers are still scored.
    data_rejects = rejects[rejects["stage"] == "validation"]
    assert {"transactions", "interactions"} <= set(data_rejects["table"])
    assert ORPHAN in set(data_rejects["customer_id"].dropna())
    assert facts["bad_txn_customer"] in set(out["customer_id"])
    counts = first_run.summary["counts"]
    assert counts["customers_in"] == counts["customers_out"] + counts["customers_rejected"] == len(customers)


def test_summary_holds_no_customer_ids_and_reports_drift(first_run):
    text = (first_run.run_dir / "summary.json").read_text()
    summary = json.loads(text)
    assert str(NEW_CUSTOMER) not in text
    assert summary["segments"]["composite_tier"]
    assert {row["flag"] for row in summary["drift"]} <= {"stable", "watch", "act", "no_data"}
    assert {row["model"] for row in summary["drift"]} == {"churn", "conversion", "upgrade"}
    assert sum(summary["segments"]["composite_tier"].values()) == summary["counts"]["customers_out"]


def test_same_input_gives_identical_output_files(trained_bank, planted, first_run, tmp_path):
    second = score(trained_bank, planted[0], tmp_path)
    files = sorted(p.relative_to(first_run.run_dir) for p in first_run.run_dir.rglob("*.parquet"))
    assert files == sorted(p.relative_to(second.run_dir) for p in second.run_dir.rglob("*.parquet"))
    for f in files:
        assert (first_run.run_dir / f).read_bytes() == (second.run_dir / f).read_bytes(), f


def test_two_workers_write_the_same_files_as_one(trained_bank, planted, first_run, tmp_path):
    """Issue 14: buckets scored in two worker processes (validated and cleaned there) give identical files."""
    parallel = score(trained_bank, planted[0], tmp_path, feature_kwargs={**trained_bank.feature_kwargs, "workers": 2})
    files = sorted(p.relative_to(first_run.run_dir) for p in first_run.run_dir.rglob("*.parquet"))
    assert len([f for f in files if f.parts[0] == "segments"]) == 3  # 2,501 customers in chunks of 1,000
    assert files == sorted(p.relative_to(parallel.run_dir) for p in parallel.run_dir.rglob("*.parquet"))
    for f in files:
        assert (first_run.run_dir / f).read_bytes() == (parallel.run_dir / f).read_bytes(), f
    assert parallel.summary["counts"] == first_run.summary["counts"]
    assert parallel.summary["counts"]["rows_rejected"] > 0  # the planted bad rows were set aside in the workers


def test_a_run_killed_midway_leaves_no_output(trained_bank, planted, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = score_module.score_chunk

    def dies_on_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(score_module, "score_chunk", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        score(trained_bank, planted[0], tmp_path)
    assert calls["n"] == 2
    assert list(tmp_path.iterdir()) == []


def test_later_run_with_overrides_and_migration(trained_bank, planted, first_run, tmp_path):
    previous = read_output(first_run.run_dir)
    mass = previous.loc[previous["composite_tier"] == "mass", "customer_id"].iloc[:3].tolist()
    overrides = tmp_path / "overrides.csv"
    pd.DataFrame({
        "customer_id": mass, "tier": "diamond", "reason": "strategic", "author": "rm7",
        "date": "2025-01-01", "expiry": "2026-01-01",
    }).to_csv(overrides, index=False)
    later = score(trained_bank, planted[0], tmp_path / "scores", as_of=LATER, previous=first_run.run_dir,
                  overrides_path=overrides)
    out = read_output(later.run_dir).set_index("customer_id")
    assert (out.loc[mass, "service_tier"] == "diamond").all()
    audit = pd.read_parquet(later.run_dir / "override_audit.parquet")
    assert sorted(audit.loc[audit["applied"], "customer_id"]) == sorted(mass)

    migration = pd.read_parquet(later.run_dir / "migration.parquet")
    tiers = migration[migration["dimension"] == "composite_tier"]
    both = set(previous["customer_id"]) | set(out.index)
    assert tiers["n"].sum() == len(both)
    new = tiers.loc[tiers["from"] == "new", "n"].sum()
    assert new == len(set(out.index) - set(previous["customer_id"]))
    # The customer opened after the first as_of appears in the later run as new.
    assert NEW_CUSTOMER in out.index and new >= 1
    share = tiers.groupby("from")["share"].sum()
    np.testing.assert_allclose(share.to_numpy(), 1.0)
    assert later.summary["migration"]["persona_id"]


def test_transition_matrices_count_new_and_gone():
    prev = pd.DataFrame({"customer_id": [1, 2, 3], "composite_tier": ["mass", "gold", "gold"],
                         "persona_id": [1, 1, 2], "churn_band": ["low", "low", "high"], "quadrant": ["ordinary"] * 3})
    cur = pd.DataFrame({"customer_id": [2, 3, 4], "composite_tier": ["gold", "platinum", "mass"],
                        "persona_id": [1, 2, 2], "churn_band": ["low", "low", "low"], "quadrant": ["ordinary"] * 3})
    t = transition_matrices(prev, cur)
    tiers = t[t["dimension"] == "composite_tier"].set_index(["from", "to"])["n"].to_dict()
    assert tiers == {("gold", "gold"): 1, ("gold", "platinum"): 1, ("mass", "gone"): 1, ("new", "mass"): 1}


def test_drift_flags_a_shifted_population():
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=5000), "p_churn": rng.uniform(size=5000)})
    reference = reference_distributions(ref, {"churn": ref["p_churn"].to_numpy()}, {"churn": ["x"]})
    same = drift_table(reference, drift_counts(reference, ref.sample(2000, random_state=1)))
    shifted = drift_table(reference, drift_counts(reference, ref.assign(x=ref["x"] + 1.0)))
    assert set(same["flag"]) == {"stable"}
    assert shifted.set_index("variable").loc["x", "flag"] == "act"
    assert shifted.set_index("variable").loc["p_churn", "flag"] == "stable"


def test_a_second_scoring_run_into_the_same_out_dir_refuses_naming_the_first(trained_bank, tmp_path):
    from test_run_lock import HOLD_LOCK, start

    from bankseg.data.run_lock import OutDirBusyError

    first, _ = start(HOLD_LOCK, str(tmp_path / "scores"))
    try:
        with pytest.raises(OutDirBusyError, match=f"in use by bankseg-score pid {first.pid} on host .*, started 20"):
            score(trained_bank, trained_bank.data_path, tmp_path / "scores")
        assert [p.name for p in (tmp_path / "scores").iterdir()] == [".tmp-deadbeef"]  # nothing published
    finally:
        first.kill()
        first.wait()


def test_the_run_after_a_killed_one_removes_its_tmp_folder_and_ends_its_mlflow_run_failed(trained_bank, tmp_path):
    import signal

    import mlflow
    from test_run_lock import IN_A_JOB_RUN, start

    out_dir = tmp_path / "scores"
    killed, killed_run = start(IN_A_JOB_RUN, trained_bank.mlflow_cfg["tracking_uri"], str(out_dir))
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert (out_dir / ".tmp-cafe").is_dir()
    result = score(trained_bank, trained_bank.data_path, out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == [result.run_dir.name]
    run = mlflow.MlflowClient().get_run(killed_run)
    assert run.info.status == "FAILED" and result.run_id in run.data.tags["bankseg.failure"]


def test_a_customer_without_a_feature_row_is_rejected_only_for_what_the_data_says():
    as_of = pd.Timestamp(AS_OF)
    customers = pd.DataFrame({
        "customer_id": [1, 2, 3, 4],
        "open_date": pd.to_datetime(["2020-01-01", "2025-03-01", None, "2024-12-31"]),
    })
    rejects = score_module.no_feature_row_rejects(customers, feature_ids=[1], as_of=as_of)
    reasons = dict(zip(rejects["customer_id"].astype(int), rejects["reason"], strict=True))
    # 2 opens on as_of (not a customer yet), 3 has no open date; 4 opened before as_of: no reason, no reject
    assert reasons == {2: "no account open before as_of 2025-03-01", 3: "no open_date in the customers table"}
    assert set(rejects["stage"]) == {"features"} and set(rejects["table"]) == {"customers"}
    with pytest.raises(ValueError, match=r"1 neither scored nor rejected: the pandas engine") as caught:
        score_module.check_accounted(customers["customer_id"].to_numpy(), np.array([1]),
                                     rejects["customer_id"].to_numpy(np.int64), as_of, "pandas")
    assert "'4'" not in str(caught.value) and "[4]" not in str(caught.value)


def test_count_check_fails_on_a_customer_the_pandas_engine_loses(trained_bank, planted, tmp_path, monkeypatch):
    customers = pd.read_parquet(planted[0] / "customers", columns=["customer_id", "open_date"])
    lost = int(customers.loc[customers["open_date"] < AS_OF, "customer_id"].min())
    real = score_module.build_bucket_features

    def loses_one_customer(*args, **kwargs):
        features = real(*args, **kwargs)
        return features[features["customer_id"] != lost]

    monkeypatch.setattr(score_module, "build_bucket_features", loses_one_customer)
    with pytest.raises(ValueError, match="1 neither scored nor rejected: the pandas engine"):
        score(trained_bank, planted[0], tmp_path)
    assert list(tmp_path.iterdir()) == []

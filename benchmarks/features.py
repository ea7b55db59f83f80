"""Benchmark: the feature job's transaction and balance blocks against a hand-written DuckDB SQL query.

For each size (millions of transactions) it makes a simulated bank (bankseg.data.simulate when present,
else a simple vectorised generator), then runs, each in its own subprocess so peak RSS is the process's own:
- ``pandas``: bankseg's transaction and balance blocks over the Parquet folder (read included), bucketed;
- ``duckdb``: one SQL query computing the same features (read included);
- ``job``: the whole feature table (all five blocks), for information.
It first checks that pandas and DuckDB agree on every feature, then reports time and peak-memory ratios and
writes benchmarks/results/features.json (with os.cpu_count() and the machine's load average).

    python benchmarks/features.py                      # 1M and 10M transactions
    python benchmarks/features.py --sizes 1 10 50      # also 50M (simulating it takes minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results" / "features.json"
WINDOWS = (1, 3, 6, 12)
RECENCY_CAP = 400
SALARY_STD_SCALE = 7.5
TXN_PER_CUSTOMER_24M = 267  # the simulator's default mix (measured: 801k transactions for 3,000 customers)


# ---------------------------------------------------------------------------------------------- data
def make_bank(root: Path, million_txns: float, seed: int = 1) -> Path:
    """Write a simulated bank of about ``million_txns`` million transactions over 24 months (once)."""
    if (root / "customers").exists() or (root / "customers.parquet").exists():
        return root
    n_customers = int(million_txns * 1e6 / TXN_PER_CUSTOMER_24M)
    try:
        from bankseg.data.simulate import SimulatorParams, write_simulated_bank
    except ImportError:
        return _simple_bank(root, n_customers, seed)
    workers = max(1, min(2, os.cpu_count() or 1))
    params = SimulatorParams(n_customers=n_customers, n_months=24, seed=seed, workers=workers)
    write_simulated_bank(params, root, progress=False)
    return root


def _simple_bank(root: Path, n_customers: int, seed: int) -> Path:
    """A plain random bank in the canonical schema (used only when the simulator is not available)."""
    from bankseg.data import schema
    from bankseg.data.io import write_table

    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01")
    ids = np.arange(1, n_customers + 1, dtype=np.int64)
    n_txn = n_customers * TXN_PER_CUSTOMER_24M
    secs = rng.integers(0, 731 * 86400, n_txn)

    def cat(values, n):
        return pd.Categorical.from_codes(rng.integers(0, len(values), n), categories=list(values))

    write_table(pd.DataFrame({
        "txn_id": np.arange(n_txn, dtype=np.int64), "customer_id": rng.choice(ids, n_txn),
        "ts": start + pd.to_timedelta(secs, unit="s"), "amount": rng.lognormal(6, 1.3, n_txn),
        "direction": cat(schema.DIRECTIONS, n_txn), "channel": cat(schema.CHANNELS, n_txn),
        "category": cat(schema.TXN_CATEGORIES, n_txn), "counterparty": cat(schema.COUNTERPARTIES, n_txn),
    }), root, "transactions")
    grid = pd.MultiIndex.from_product(
        [ids, pd.date_range(start, periods=24, freq="MS"), ["demand_deposit", "time_deposit", "fund", "mortgage"]],
        names=["customer_id", "month", "product"],
    ).to_frame(index=False)
    grid = grid[rng.random(len(grid)) < 0.5]
    adb = rng.lognormal(9, 1.5, len(grid))
    write_table(pd.DataFrame({
        "customer_id": grid["customer_id"].to_numpy(), "month": grid["month"].to_numpy(),
        "product": pd.Categorical(grid["product"].astype(str), categories=list(schema.PRODUCTS)),
        "avg_daily_balance": adb, "month_end_balance": adb * rng.uniform(0.5, 1.5, len(grid)),
    }), root, "balances")
    write_table(pd.DataFrame({"customer_id": ids}), root, "customers")
    return root


# ---------------------------------------------------------------------------------------------- sides
def run_pandas(root: Path, as_of: pd.Timestamp, n_buckets: int, out: Path) -> dict:
    """bankseg's balance and transaction blocks, bucket by bucket, from the Parquet folder."""
    from bankseg.features.balances import build_balance_features
    from bankseg.features.build import FeatureSettings, iter_buckets, transaction_features

    settings = FeatureSettings(windows=WINDOWS, recency_cap_days=RECENCY_CAP, salary_day_std_scale=SALARY_STD_SCALE)
    start = time.perf_counter()
    parts = []
    for tables in iter_buckets(root, n_buckets, tables=("customers", "balances", "transactions")):
        ids = np.sort(tables.pop("customers")["customer_id"].to_numpy())
        bal = build_balance_features(
            tables.pop("balances"), as_of, windows=settings.windows, aum_products=settings.aum_products,
            loan_products=settings.loan_products, customer_ids=ids,
        )
        (txn,) = transaction_features(tables.pop("transactions"), [as_of], [ids], settings)
        parts.append(pd.concat([bal, txn.drop(columns="customer_id")], axis=1))
    result = pd.concat(parts, ignore_index=True)
    seconds = time.perf_counter() - start
    result.to_parquet(out)
    return {"seconds": seconds, "rows": len(result)}


def run_job(root: Path, as_of: pd.Timestamp, n_buckets: int, out: Path) -> dict:
    """The whole feature table (all five blocks), as bankseg-features builds it."""
    from bankseg.features.build import build_feature_table

    start = time.perf_counter()
    table = build_feature_table(root, as_of, n_buckets=n_buckets)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(table), "columns": table.shape[1]}


def _source(root: Path, name: str) -> str:
    from bankseg.data.io import table_path

    path = table_path(root, name)
    return f"'{path}/*.parquet'" if path.is_dir() else f"'{path}'"


def duckdb_sql(root: Path, as_of: pd.Timestamp) -> str:
    """The same balance and transaction features in one DuckDB SQL query (as_of: first of a month)."""
    from bankseg.data.schema import CHANNELS, DEFAULT_AUM_PRODUCTS, DEFAULT_LOAN_PRODUCTS, TXN_CATEGORIES

    m = as_of.year * 12 + as_of.month - 1
    start12 = (as_of - pd.DateOffset(months=12)).strftime("%Y-%m-%d")
    day = as_of.strftime("%Y-%m-%d")
    aum = ", ".join(f"'{p}'" for p in DEFAULT_AUM_PRODUCTS)
    loans = ", ".join(f"'{p}'" for p in DEFAULT_LOAN_PRODUCTS)
    t_aggs = []
    for w in WINDOWS:
        t_aggs += [
            f"count(*) FILTER (WHERE r < {w}) AS txn_count_{w}m",
            f"coalesce(sum(amount) FILTER (WHERE r < {w}), 0) AS txn_amount_{w}m",
            f"coalesce(sum(amount) FILTER (WHERE r < {w} AND direction = 'in'), 0) AS txn_inflow_{w}m",
            f"coalesce(sum(amount) FILTER (WHERE r < {w} AND direction = 'out'), 0) AS txn_outflow_{w}m",
        ]
    t_aggs += [f"count(*) FILTER (WHERE channel = '{c}') AS ch_{c}" for c in CHANNELS]
    t_aggs += [f"count(*) FILTER (WHERE category = '{c}') AS cat_{c}" for c in TXN_CATEGORIES]
    t_select = []
    for w in WINDOWS:
        t_select += [f"coalesce(txn_count_{w}m, 0) AS txn_count_{w}m"]
    for kind in ("amount", "inflow", "outflow"):
        t_select += [f"coalesce(txn_{kind}_{w}m, 0) AS txn_{kind}_{w}m" for w in WINDOWS]
    t_select += [f"coalesce(ch_{c} / nullif(txn_count_12m, 0), 0) AS txn_channel_share_{c}" for c in CHANNELS]
    t_select += [f"coalesce(cat_{c} / nullif(txn_count_12m, 0), 0) AS txn_category_share_{c}" for c in TXN_CATEGORIES]
    b_aggs, b_select = [], []
    for w in WINDOWS:
        b_aggs += [f"sum(aum) FILTER (WHERE rel < {w}) AS aum_{w}", f"sum(loan) FILTER (WHERE rel < {w}) AS loan_{w}"]
        b_select += [f"coalesce(aum_{w} / nullif(least({w}, history), 0), 0) AS bal_aum_adb_{w}m"]
    b_select += [f"coalesce(loan_{w} / nullif(least({w}, history), 0), 0) AS bal_loan_adb_{w}m" for w in WINDOWS]
    b_monthly = [f"coalesce(sum(adb) FILTER (WHERE product = '{p}'), 0) AS p_{p}" for p in DEFAULT_AUM_PRODUCTS]
    b_aggs += [f"sum(p_{p}) FILTER (WHERE rel < 3) AS s_{p}" for p in DEFAULT_AUM_PRODUCTS]
    b_select += [f"coalesce(s_{p} / nullif(aum_recent, 0), 0) AS bal_aum_share_{p}" for p in DEFAULT_AUM_PRODUCTS]
    nl = ",\n        "
    return f"""
WITH t AS (
    SELECT customer_id, ts, amount, direction::VARCHAR AS direction, channel::VARCHAR AS channel,
           category::VARCHAR AS category, counterparty::VARCHAR AS counterparty,
           {m} - 1 - (year(ts) * 12 + month(ts) - 1) AS r
    FROM read_parquet({_source(root, "transactions")})
    WHERE ts >= TIMESTAMP '{start12}' AND ts < TIMESTAMP '{day}'
),
tx AS (
    SELECT customer_id,
        max(ts) AS last_ts,
        {nl.join(t_aggs)},
        count(*) FILTER (WHERE r >= 3 AND r < 6) AS count_prev_3m,
        count(*) FILTER (WHERE category = 'salary' AND direction = 'in') AS n_salary,
        stddev_pop(day(ts)) FILTER (WHERE category = 'salary' AND direction = 'in') AS salary_day_std,
        sum(amount) FILTER (WHERE r < 3 AND direction = 'out' AND counterparty = 'other_bank') AS other_bank_3m
    FROM t GROUP BY customer_id
),
inflow_months AS (  -- per customer and month: inflow and salary credits (no DISTINCT aggregate needed)
    SELECT customer_id, max(m_in) AS max_in, sum(m_in) AS total_in, count(*) FILTER (WHERE m_salary > 0) AS salary_months
    FROM (SELECT customer_id, r, sum(amount) AS m_in, count(*) FILTER (WHERE category = 'salary') AS m_salary
          FROM t WHERE direction = 'in' GROUP BY customer_id, r)
    GROUP BY customer_id
),
b AS (
    SELECT customer_id, product::VARCHAR AS product, avg_daily_balance AS adb, month_end_balance AS me,
           year(month) * 12 + month(month) - 1 AS m
    FROM read_parquet({_source(root, "balances")})
    WHERE month < TIMESTAMP '{day}'
),
hist AS (SELECT customer_id, {m} - min(m) AS history FROM b GROUP BY customer_id),
monthly AS (
    SELECT customer_id, {m} - 1 - m AS rel,
        coalesce(sum(adb) FILTER (WHERE product IN ({aum})), 0) AS aum,
        coalesce(sum(adb) FILTER (WHERE product IN ({loans})), 0) AS loan,
        coalesce(sum(me) FILTER (WHERE product IN ({aum})), 0) AS aum_me,
        {nl.join(b_monthly)}
    FROM b WHERE m >= {m - 12} GROUP BY customer_id, rel
),
bal AS (
    SELECT customer_id, any_value(history) AS history,
        {nl.join(b_aggs)},
        sum(aum) FILTER (WHERE rel < 3) AS aum_recent,
        sum(aum) FILTER (WHERE rel >= 3 AND rel < 6) AS aum_earlier,
        sum(aum) FILTER (WHERE rel < least(6, history)) AS v_sum,
        sum(aum * aum) FILTER (WHERE rel < least(6, history)) AS v_sq,
        sum(aum_me) FILTER (WHERE rel = 0) AS me_last
    FROM monthly JOIN hist USING (customer_id) GROUP BY customer_id
),
bal_all AS (
    SELECT h.customer_id, h.history, bal.* EXCLUDE (customer_id, history)
    FROM hist h LEFT JOIN bal USING (customer_id)
),
vol AS (
    SELECT customer_id, v_sum / least(6, history) AS v_mean, v_sq / least(6, history) AS v_sq_mean FROM bal_all
)
SELECT c.customer_id,
    {nl.join(b_select)},
    coalesce(aum_recent, 0) / nullif(coalesce(aum_earlier, 0), 0) - 1 AS bal_aum_trend_3m,
    sqrt(greatest(v_sq_mean - v_mean * v_mean, 0)) / nullif(coalesce(v_mean, 0), 0) AS bal_aum_volatility_6m,
    coalesce(me_last, 0) AS bal_aum_month_end_last,
    coalesce(history, 0) AS bal_history_months,
    coalesce(least(date_diff('day', last_ts::DATE, DATE '{day}'), {RECENCY_CAP}), {RECENCY_CAP}) AS txn_recency_days,
    {nl.join(t_select)},
    coalesce(txn_inflow_3m, 0) - coalesce(txn_outflow_3m, 0) AS txn_net_flow_3m,
    CASE WHEN n_salary >= 2 THEN 1 - least(salary_day_std / {SALARY_STD_SCALE}, 1) ELSE 0 END AS txn_salary_regularity,
    coalesce(salary_months, 0) AS txn_salary_months_12m,
    coalesce(max_in / nullif(total_in, 0), 0) AS txn_inflow_seasonality,
    coalesce(other_bank_3m / nullif(txn_outflow_3m, 0), 0) AS txn_outflow_other_bank_share_3m,
    coalesce(txn_count_3m, 0) / nullif(coalesce(count_prev_3m, 0), 0) - 1 AS txn_count_trend_3m
FROM read_parquet({_source(root, "customers")}) c
LEFT JOIN tx USING (customer_id)
LEFT JOIN inflow_months USING (customer_id)
LEFT JOIN bal_all b2 USING (customer_id)
LEFT JOIN vol USING (customer_id)
ORDER BY c.customer_id
"""


def run_duckdb(root: Path, as_of: pd.Timestamp, out: Path) -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    sql = duckdb_sql(root, as_of)
    start = time.perf_counter()
    con.execute(f"CREATE TABLE result AS {sql}")
    seconds = time.perf_counter() - start
    rows = con.execute("SELECT count(*) FROM result").fetchone()[0]
    con.execute(f"COPY result TO '{out}' (FORMAT parquet)")
    return {"seconds": seconds, "rows": rows}


# ---------------------------------------------------------------------------------------------- harness
def peak_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM: unlike ru_maxrss it does not inherit the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(args: argparse.Namespace) -> None:
    as_of = pd.Timestamp(args.as_of)
    baseline = peak_rss_bytes()
    if args.child == "pandas":
        stats = run_pandas(Path(args.data), as_of, args.n_buckets, Path(args.out))
    elif args.child == "job":
        stats = run_job(Path(args.data), as_of, args.n_buckets, Path(args.out))
    else:
        stats = run_duckdb(Path(args.data), as_of, Path(args.out))
    stats["peak_rss_bytes"] = peak_rss_bytes()
    stats["rss_after_imports_bytes"] = baseline
    print(json.dumps(stats))


def measure(side: str, data: Path, as_of: pd.Timestamp, n_buckets: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--data", str(data), "--as-of", str(as_of.date()),
           "--n-buckets", str(n_buckets), "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{proc.stderr[-4000:]}")
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    stats["process_seconds"] = time.perf_counter() - started
    return stats


def compare(pandas_out: Path, duckdb_out: Path) -> dict:
    """Check that both sides computed the same values for every feature; raise with the worst columns if not."""
    ours = pd.read_parquet(pandas_out).sort_values("customer_id", ignore_index=True)
    theirs = pd.read_parquet(duckdb_out).sort_values("customer_id", ignore_index=True)
    if not np.array_equal(ours["customer_id"].to_numpy(), theirs["customer_id"].to_numpy()):
        raise AssertionError("pandas and DuckDB computed features for different customers")
    missing = sorted(set(ours.columns) ^ set(theirs.columns))
    if missing:
        raise AssertionError(f"columns differ between the two sides: {missing}")
    bad = {}
    for column in ours.columns:
        a = ours[column].to_numpy(dtype=np.float64)
        b = theirs[column].to_numpy(dtype=np.float64)
        ok = np.isclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True)
        if not ok.all():
            bad[column] = int((~ok).sum())
    if bad:
        raise AssertionError(f"pandas and DuckDB disagree (column: rows): {bad}")
    return {"columns": len(ours.columns) - 1, "customers": len(ours)}


def bench_size(million: float, data_dir: Path, n_buckets: int | None, repeat: int) -> dict:
    root = data_dir / f"bank_{million:g}m"
    t0 = time.perf_counter()
    make_bank(root, million)
    made = time.perf_counter() - t0
    from bankseg.features.build import dataset_data_end

    as_of = dataset_data_end(root)  # the first day after the data: every feature window is full
    import pyarrow.dataset as ds

    from bankseg.data.io import table_path

    n_txn = ds.dataset(str(table_path(root, "transactions")), format="parquet").count_rows()
    buckets = n_buckets or max(1, int(np.ceil(n_txn / 15e6)))
    out = data_dir / "out"
    out.mkdir(parents=True, exist_ok=True)
    runs = {"pandas": [], "duckdb": []}
    for _ in range(repeat):  # alternate the sides so machine load hits both alike
        runs["duckdb"].append(measure("duckdb", root, as_of, buckets, out / "duckdb.parquet"))
        runs["pandas"].append(measure("pandas", root, as_of, buckets, out / "pandas.parquet"))
    agreement = compare(out / "pandas.parquet", out / "duckdb.parquet")
    job = measure("job", root, as_of, buckets, out / "job.parquet")
    best = {side: min(r, key=lambda s: s["seconds"]) for side, r in runs.items()}
    peak = {side: max(s["peak_rss_bytes"] for s in r) for side, r in runs.items()}
    return {
        "million_transactions": n_txn / 1e6,
        "simulate_seconds": round(made, 1),
        "as_of": str(as_of.date()),
        "n_buckets": buckets,
        "agreement": agreement,
        "pandas": {"seconds": round(best["pandas"]["seconds"], 3), "peak_rss_gb": round(peak["pandas"] / 1e9, 3),
                   "all_seconds": [round(s["seconds"], 3) for s in runs["pandas"]]},
        "duckdb": {"seconds": round(best["duckdb"]["seconds"], 3), "peak_rss_gb": round(peak["duckdb"] / 1e9, 3),
                   "all_seconds": [round(s["seconds"], 3) for s in runs["duckdb"]]},
        "ratio_time": round(best["pandas"]["seconds"] / best["duckdb"]["seconds"], 3),
        "ratio_memory": round(peak["pandas"] / peak["duckdb"], 3),
        "full_job": {"seconds": round(job["seconds"], 3), "peak_rss_gb": round(job["peak_rss_bytes"] / 1e9, 3),
                     "columns": job["columns"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 10], help="millions of transactions")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bankseg-bench-features"))
    parser.add_argument("--n-buckets", type=int, default=None, help="default: one bucket per 15M transactions")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=["pandas", "duckdb", "job"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    report = {"cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg(), "sizes": []}
    for million in args.sizes:
        result = bench_size(million, args.data_dir, args.n_buckets, args.repeat)
        report["sizes"].append(result)
        print(json.dumps(result, indent=2), flush=True)
    report["load_average_at_end"] = os.getloadavg()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(report, indent=2))
    print(f"written {args.results}")
    for r in report["sizes"]:
        print(f"{r['million_transactions']:6.1f}M txns  buckets={r['n_buckets']}  pandas {r['pandas']['seconds']:.2f}s "
              f"{r['pandas']['peak_rss_gb']:.2f}GB  duckdb {r['duckdb']['seconds']:.2f}s {r['duckdb']['peak_rss_gb']:.2f}GB  "
              f"ratio time {r['ratio_time']:.2f}  memory {r['ratio_memory']:.2f}  full job {r['full_job']['seconds']:.2f}s")


if __name__ == "__main__":
    main()

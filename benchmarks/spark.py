"""Benchmark: features + scoring (the bankseg-score job) on Spark local[2] against pandas, at several bank sizes.

    python benchmarks/spark.py --sizes 50000 250000 --work /work/data_spark [--repeats 1]

Per size, a simulated bank of N customers x 36 months in ``--work/n<N>/simulated`` (made by bankseg-simulate when
missing, not timed). The models are trained once, on the smallest size, with the pipeline's own jobs (the first
stages of :mod:`end_to_end`: features, four models, export; reused when ``--work/n<N>/outputs/models/segmenter.json``
exists), and every size is scored with that one registered segmenter. Then, interleaved in one run (the engines
alternate, the order flips every size and repeat, so a change in the machine's load hits both), each engine runs
``bankseg-score as_of=latest`` (validation, features, segmenter with reason codes for everyone, output) as a user
runs it, in its own process.

Per run: wall seconds; CPU seconds as the larger of wait4's figure (the job and the processes it waited for) and
the sum over the job's process tree sampled every 0.2 s (Spark's JVM and Python workers are not always waited
for); peak RSS of the tree; the job's own step timings from its summary.json; the load average before and after.
Both engines must give the same counts (in / out / rejected). ``growth`` is the per-customer cost at each size
divided by the cost at the smallest: 1.0 is linear. Results go to benchmarks/results/spark.json. The machine is
shared: read the load averages beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import run_stage as run_job  # the pipeline's jobs, run and measured as end_to_end does
from end_to_end import stages

RESULTS = Path(__file__).resolve().parent / "results" / "spark.json"
ENGINES = ("pandas", "spark")
TRAINING = ("features", "train_personas", "train_churn", "train_conversion", "train_upgrade", "export")


def make_bank(root: Path, n_customers: int) -> Path:
    """The simulated bank of a size (bankseg-simulate, once)."""
    data = root / "simulated"
    if not (data / "customers").exists():
        (argv,) = [a for name, a in stages(root, n_customers) if name == "simulate"]
        print(f"  simulating {n_customers:,} customers into {data}", flush=True)
        run_job(argv, root, root / "logs" / "simulate.log")
    return data


def train_world(root: Path, n_customers: int) -> None:
    """Features, four models and the exported segmenter in ``root``'s MLflow store (once)."""
    if (root / "outputs" / "models" / "segmenter.json").exists():
        print(f"  models reused from {root}", flush=True)
        return
    for name, argv in stages(root, n_customers):
        if name in TRAINING:
            r = run_job(argv, root, root / "logs" / f"{name}.log")
            print(f"  {name:16s} {r['wall_seconds']:7.1f} s wall", flush=True)


def score_once(engine: str, data: Path, world: Path, out: Path, log: Path) -> dict:
    """One bankseg-score run (as_of=latest) of ``data`` with ``world``'s segmenter; its figures and summary."""
    argv = ["bankseg-score", "as_of=latest", f"data.path={data}", f"engine={engine}", f"out_dir={out}",
            "features.spark_master='local[2]'"]
    load_before = os.getloadavg()
    figures = run_job(argv, world, log)
    (summary_path,) = sorted(out.glob("*/summary.json"))
    summary = json.loads(summary_path.read_text())
    return {**figures, "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()], "as_of": summary["as_of"],
            "counts": summary["counts"], "job_timings_seconds": summary["timings_seconds"]}


def summarise(runs: list[dict]) -> dict:
    """Median wall and CPU per engine and size, per-customer cost, growth against the smallest size."""
    table: dict[str, dict[str, dict]] = {}
    for engine in ENGINES:
        sizes = sorted({r["n_customers"] for r in runs if r["engine"] == engine})
        for n in sizes:
            mine = [r for r in runs if r["engine"] == engine and r["n_customers"] == n]
            wall = statistics.median(r["wall_seconds"] for r in mine)
            cpu = statistics.median(r["cpu_seconds"] for r in mine)
            table.setdefault(engine, {})[str(n)] = {
                "wall_seconds": wall, "cpu_seconds": cpu, "runs": len(mine),
                "wall_ms_per_customer": round(wall / n * 1000, 4), "cpu_ms_per_customer": round(cpu / n * 1000, 4),
            }
    growth = {}
    for engine, by_size in table.items():
        smallest = by_size[min(by_size, key=int)]
        growth[engine] = {n: {"wall": round(v["wall_ms_per_customer"] / smallest["wall_ms_per_customer"], 3),
                              "cpu": round(v["cpu_ms_per_customer"] / smallest["cpu_ms_per_customer"], 3)}
                          for n, v in by_size.items()}
    spark_vs_pandas = {n: round(table["spark"][n]["wall_seconds"] / table["pandas"][n]["wall_seconds"], 2)
                       for n in table.get("spark", {}) if n in table.get("pandas", {})}
    return {"by_engine": table, "growth_per_customer_vs_smallest": growth, "spark_over_pandas_wall": spark_vs_pandas}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 250_000])
    parser.add_argument("--work", type=Path, required=True, help="folder for the banks, the models and the scores")
    parser.add_argument("--repeats", type=int, default=1, help="runs per engine and size")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    sizes = sorted(args.sizes)
    print(f"{os.cpu_count()} cores, load {os.getloadavg()}", flush=True)
    banks = {n: make_bank(work / f"n{n}", n) for n in sizes}
    world = work / f"n{sizes[0]}"
    train_world(world, sizes[0])
    runs = []
    for n in sizes:
        for repeat in range(args.repeats):
            order = ENGINES if (len(runs) // 2) % 2 == 0 else ENGINES[::-1]
            for engine in order:
                out = work / "scores" / f"n{n}" / f"{engine}-{repeat}"
                r = score_once(engine, banks[n], world, out, work / "logs" / f"score-n{n}-{engine}-{repeat}.log")
                runs.append({"n_customers": n, "engine": engine, "repeat": repeat, **r})
                print(f"  {n:>9,} {engine:6s} {r['wall_seconds']:7.1f} s wall {r['cpu_seconds']:7.1f} s CPU "
                      f"{r['peak_rss_gib']:5.2f} GiB  load {r['load_average_before'][0]:.1f}"
                      f"->{r['load_average_after'][0]:.1f}", flush=True)
        counts = {r["engine"]: r["counts"] for r in runs if r["n_customers"] == n}
        if len({json.dumps(c, sort_keys=True) for c in counts.values()}) != 1:
            raise SystemExit(f"engines disagree on the counts at {n:,} customers: {counts}")
    result = {"benchmark": "spark", "cpu_count": os.cpu_count(), "spark_master": "local[2]",
              "models_trained_on_n_customers": sizes[0], "n_months": 36, "runs": runs, **summarise(runs)}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("growth_per_customer_vs_smallest", "spark_over_pandas_wall")}, indent=2))
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()

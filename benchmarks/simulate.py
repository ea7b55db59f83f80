"""Benchmark the simulated bank: wall time, peak memory, rows and bytes for write_simulated_bank.

    python benchmarks/simulate.py --n-customers 100000 --out /tmp/simbank --results benchmarks/results/simulate.json

Peak RSS: this process's and its largest child's (pool worker) maximum resident set size, and a bound for
the machine (parent + workers x largest child). CPU seconds count the parent and its workers.
The output folder is deleted afterwards unless --keep is given (write it outside the project, e.g. /tmp).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

from bankseg.data.simulate import SimulatorParams, write_simulated_bank


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-customers", type=int, default=1_000_000)
    ap.add_argument("--n-months", type=int, default=36)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--customers-per-part", type=int, default=50_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bankseg-simulate-bench"))
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/simulate.json"))
    ap.add_argument("--keep", action="store_true", help="keep the simulated dataset")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. machine load)")
    args = ap.parse_args()

    params = SimulatorParams(
        n_customers=args.n_customers,
        n_months=args.n_months,
        seed=args.seed,
        customers_per_part=args.customers_per_part,
        workers=args.workers,
    )
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows = write_simulated_bank(params, args.out, progress=True)
    wall = time.perf_counter() - t0
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    self_kb, child_kb = me.ru_maxrss, kids.ru_maxrss
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    per_table = {p.name: _folder_bytes(p) if p.is_dir() else p.stat().st_size for p in sorted(args.out.iterdir())}
    result = {
        "n_customers": args.n_customers,
        "n_months": args.n_months,
        "customers_per_part": args.customers_per_part,
        "workers": args.workers,
        "wall_seconds": round(wall, 1),
        # CPU seconds of this process and its workers: on a loaded machine, wall time / this ratio shows
        # how much of the machine the run got; cpu_seconds / cpu_count is the wall time on an idle machine.
        "cpu_seconds": round(cpu, 1),
        "idle_machine_wall_estimate_seconds": round(cpu / min(os.cpu_count() or 1, max(args.workers, 1)), 1),
        "peak_rss_gib_self": round(self_kb / 2**20, 2),
        "peak_rss_gib_largest_child": round(child_kb / 2**20, 2),
        # Workers run at the same time: the machine's peak is at most parent + workers x largest child.
        "peak_rss_gib_bound": round((self_kb + min(args.workers, params.n_parts) * child_kb) / 2**20, 2),
        "rows": rows,
        "transactions_per_customer_month": round(rows["transactions"] / (args.n_customers * args.n_months), 2),
        "bytes_on_disk": per_table,
        "total_gib_on_disk": round(sum(per_table.values()) / 2**30, 2),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "note": args.note,
    }
    print(json.dumps(result, indent=2))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(args.out)


if __name__ == "__main__":
    main()

"""A whole bank end to end: the `make run` pipeline at N customers x 36 months, stage by stage.

    python benchmarks/end_to_end.py --sizes 50000 250000 1000000 --work /work/data_e2e [--reuse] [--workers 2]

Per size, in ``--work/n<N>/`` (its own data, MLflow store and reports; BANKSEG_ROOT points there), the jobs run
as a user runs them, each in its own process, in the order of dvc.yaml:

    simulate -> features (as_of=plan) -> train personas, churn, conversion, upgrade (each propensity model with its
    model review report) -> export -> score (as_of=latest, reason codes for everyone) -> segment report

Per stage: wall seconds, CPU seconds (user + system of the job and every process it waited for, from wait4) and
peak memory (the largest sum of RSS over the job's process tree, sampled every 0.2 s with psutil, so parallel
workers count together). ``--reuse`` keeps a size's simulated bank when it exists (its simulate stage is then
not timed). Results go to benchmarks/results/end_to_end.json (``runs``: one entry per size with
``n_customers``, ``total_wall_seconds``, ``peak_rss_gib``, ``cpu_count``, ``load_average`` before/after and
``stages``) and are printed; one entry per size and ``--workers`` (the jobs' ``workers`` setting, passed to every job,
and ``simulator.workers``; an entry without the field predates the setting, one process). The machine is shared:
read the load averages beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results" / "end_to_end.json"
BIN = Path(sys.executable).parent
PROPENSITY = ("churn", "conversion", "upgrade")


def stages(root: Path, n_customers: int, workers: int) -> list[tuple[str, list[str]]]:
    """The pipeline's jobs with their settings (dvc.yaml's commands, on this size's folders)."""
    data, features = root / "simulated", root / "features"
    models = root / "outputs" / "models"
    common = [f"data.path={data}", f"workers={workers}"]
    out = [
        ("simulate", ["bankseg-simulate", f"out_dir={data}", f"simulator.n_customers={n_customers}",
                      f"simulator.workers={workers}"]),
        ("features", ["bankseg-features", "as_of=plan", *common, f"out_dir={features}"]),
        ("train_personas", ["bankseg-train", "model=personas", *common, f"features_path={features}",
                            f"result_file={models}/personas.json"]),
    ]
    out += [(f"train_{m}", ["bankseg-train", f"model={m}", *common, f"features_path={features}",
                            f"result_file={models}/{m}.json"]) for m in PROPENSITY]
    out += [
        ("export", ["bankseg-export", *common, f"features_path={features}", f"result_file={models}/segmenter.json"]),
        ("score", ["bankseg-score", "as_of=latest", *common, f"out_dir={root}/scores/latest"]),
        ("segment_report", ["bankseg-report", "report=segments", *common, f"scoring_dir={root}/scores/latest"]),
    ]
    return out


def run_stage(argv: list[str], root: Path, log_path: Path) -> dict:
    """Run one job with BANKSEG_ROOT=root; wall, CPU (waited and process-tree) seconds, peak RSS of the tree."""
    env = {**os.environ, "BANKSEG_ROOT": str(root), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], cwd=root, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        watch = _TreeWatch(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        watch.stop()
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{argv[0]} failed; log {log_path}:\n" + "\n".join(tail))
    waited = usage.ru_utime + usage.ru_stime
    return {"wall_seconds": round(wall, 1), "cpu_seconds": round(max(waited, watch.cpu_seconds()), 1),
            "cpu_seconds_waited": round(waited, 1), "cpu_seconds_tree": round(watch.cpu_seconds(), 1),
            "peak_rss_gib": round(watch.peak_rss / 2**30, 2)}


class _TreeWatch:
    """Samples a process tree every 0.2 s: the RSS sum's peak and each process's last own CPU time."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_rss, self.cpu = pid, 0, {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            parent = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._done.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
            except psutil.Error:
                return
            total = 0
            for p in tree:
                try:
                    with p.oneshot():
                        total += p.memory_info().rss
                        times = p.cpu_times()
                    self.cpu[(p.pid, p.create_time())] = times.user + times.system
                except psutil.Error:
                    pass
            self.peak_rss = max(self.peak_rss, total)
            time.sleep(0.2)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


def run_size(n_customers: int, work: Path, reuse: bool, workers: int) -> dict:
    root = work / f"n{n_customers}"
    (root / "logs").mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    results: dict[str, dict[str, float]] = {}
    for name, argv in stages(root, n_customers, workers):
        if name == "simulate" and reuse and (root / "simulated" / "customers").exists():
            print(f"  {name:15s} reused {root / 'simulated'}", flush=True)
            continue
        results[name] = run_stage(argv, root, root / "logs" / f"{name}.log")
        r = results[name]
        print(f"  {name:15s} {r['wall_seconds']:8.1f} s wall {r['cpu_seconds']:8.1f} s CPU "
              f"{r['peak_rss_gib']:6.2f} GiB  (load {os.getloadavg()[0]:.1f})", flush=True)
    return {
        "n_customers": n_customers,
        "n_months": 36,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "total_wall_seconds": round(sum(r["wall_seconds"] for r in results.values()), 1),
        "total_cpu_seconds": round(sum(r["cpu_seconds"] for r in results.values()), 1),
        "peak_rss_gib": max(r["peak_rss_gib"] for r in results.values()),
        "slowest_stage": max(results, key=lambda s: results[s]["wall_seconds"]),
        "simulate_reused": "simulate" not in results,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "stages": results,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000])
    parser.add_argument("--work", type=Path, required=True, help="folder for the banks, stores and reports")
    parser.add_argument("--reuse", action="store_true", help="keep a size's simulated bank when present")
    parser.add_argument("--workers", type=int, default=1, help="the jobs' workers setting (0 = every core)")
    args = parser.parse_args(argv)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = {_key(r): r for r in previous.get("runs", [])}
    for n in args.sizes:
        print(f"{n:,} customers x 36 months, {os.cpu_count()} cores, workers={args.workers}:", flush=True)
        key = (n, args.workers)
        runs[key] = run_size(n, args.work.resolve(), args.reuse, args.workers)
        print(f"  total {runs[key]['total_wall_seconds']:.0f} s wall, peak {runs[key]['peak_rss_gib']:.2f} GiB",
              flush=True)
        ordered = [runs[k] for k in sorted(runs, key=lambda k: (k[0], k[1] or 0))]
        RESULTS.write_text(json.dumps({"benchmark": "end_to_end", "runs": ordered, **_growth(ordered)}, indent=2) + "\n")
    print(f"written {RESULTS}")


def _key(run: dict) -> tuple[int, int | None]:
    return run["n_customers"], run.get("workers")


def _growth(runs: list[dict]) -> dict:
    """Wall seconds per 1,000 customers per size (and workers, when set): flat means linear growth."""
    def name(r: dict) -> str:
        return str(r["n_customers"]) if r.get("workers") is None else f"{r['n_customers']}_workers{r['workers']}"

    return {"wall_seconds_per_1k_customers": {
        name(r): round(r["total_wall_seconds"] / r["n_customers"] * 1000, 3) for r in runs}}


if __name__ == "__main__":
    main()

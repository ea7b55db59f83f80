"""The embedded synthetic bank: a deterministic, persona-driven simulation of a Chinese retail bank (CNY).

Customers are simulated in parts (buckets of ``customers_per_part`` consecutive customer ids). A part depends only
on ``(seed, part index)`` (``np.random.default_rng([seed, part_idx])``, plus one market series from the seed),
so the dataset is the same however it is produced: in memory (:func:`simulate_bank`), streamed to Parquet
(:func:`write_simulated_bank`, one part at a time, optionally in a process pool), and byte-identical files for
the same seed. How customers live is in :mod:`bankseg.data.simulate_dynamics`; who they are in
:mod:`bankseg.data.simulate_population`; their money flows in :mod:`bankseg.data.simulate_flows`.

Output
------
The five canonical tables (schema.py) plus ground truth that no pipeline step may read:
- ``ground_truth`` (one row per customer): persona, second_persona, persona_mix_weight (mean weight of the main
  persona over the window), churn_onset_month (NaT if none), churn_abrupt, churn_frailty, salary_redirected.
- ``ground_truth_monthly`` (customer x month from joining): state, churning, churn_hazard (the month's true
  churn-onset hazard), upgrade_hazard, engagement, persona_weight, dissatisfaction, phase_months_left,
  target_wealth.
On disk: ``<out>/<table>/part-00000.parquet ...`` for the five tables and ``ground_truth_monthly``, and one
``<out>/ground_truth.parquet``.

What a churn model could know is bounded by :mod:`bankseg.models.bound`: a twin of the model that also sees the
latent state at T-1 (state, months left in the phase, dissatisfaction, true hazards), on the same rows. Churn
onset is driven by a dissatisfaction that builds over months and shows first (fewer logins, complaints, money
to other banks, salary redirected, time deposits closed), so a features-only model of "churn begins in 3 months"
reaches about 0.70-0.82 and the bound of the churn label about 0.80-0.90 at the default knobs; the realism facts
(low-activity share, rich share, attrition) are in :mod:`bankseg.data.world_facts`.
Persona recovery is hard on purpose: each customer blends two personas and drifts (persona_weight).
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from functools import cache, partial
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from bankseg.data import schema
from bankseg.data.simulate_dynamics import run_months
from bankseg.data.simulate_flows import Calendar
from bankseg.data.simulate_population import draw_population
from bankseg.data.simulate_tables import (
    build_balances,
    build_customers,
    build_ground_truth,
    build_ground_truth_monthly,
    build_holdings,
    build_interactions,
    build_transactions,
)

PART_TABLES: tuple[str, ...] = (*schema.TABLE_NAMES, "ground_truth_monthly")
# The packaged config (conf/ ships as bankseg.conf), so defaults resolve from a wheel as from the checkout.
_DEFAULTS_FILE = Path(str(files("bankseg.conf"))) / "simulator" / "default.yaml"


@cache
def _yaml_defaults() -> dict:
    """The packaged conf/simulator/default.yaml: the one source of every default knob."""
    try:
        from importlib.resources import files

        text = (files("bankseg.conf") / "simulator" / "default.yaml").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        text = _DEFAULTS_FILE.read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _section(key: str) -> dict:
    """A fresh copy of one section of the packaged defaults (instances never share a mutable default)."""
    return copy.deepcopy(_yaml_defaults()[key])


@dataclass(frozen=True)
class SimulatorParams:
    """Every knob of the simulated bank; field names are the keys of conf/simulator/default.yaml.

    Nested sections are plain dicts (as Hydra resolves them); a missing section takes the packaged default.
    """

    n_customers: int = 50_000
    n_months: int = 36
    seed: int = 42
    start_month: str = "2023-01-01"
    customers_per_part: int = 50_000
    workers: int = 1
    population: dict = field(default_factory=partial(_section, "population"))
    messy: dict = field(default_factory=partial(_section, "messy"))
    balances: dict = field(default_factory=partial(_section, "balances"))
    loans: dict = field(default_factory=partial(_section, "loans"))
    amounts: dict = field(default_factory=partial(_section, "amounts"))
    churn: dict = field(default_factory=partial(_section, "churn"))
    campaigns: dict = field(default_factory=partial(_section, "campaigns"))
    adoption: dict = field(default_factory=partial(_section, "adoption"))
    interactions: dict = field(default_factory=partial(_section, "interactions"))
    personas: dict = field(default_factory=partial(_section, "personas"))
    seasons: dict = field(default_factory=partial(_section, "seasons"))
    channels: dict = field(default_factory=partial(_section, "channels"))

    def __post_init__(self) -> None:
        problems = []
        if self.n_customers < 1:
            problems.append(f"n_customers must be >= 1, got {self.n_customers}")
        if self.n_months < 1:
            problems.append(f"n_months must be >= 1, got {self.n_months}")
        if self.customers_per_part < 1:
            problems.append(f"customers_per_part must be >= 1, got {self.customers_per_part}")
        if self.workers < 1:
            problems.append(f"workers must be >= 1, got {self.workers}")
        try:
            Calendar.from_start(str(self.start_month), 1)
        except ValueError as e:
            problems.append(str(e))
        if problems:
            raise ValueError("invalid simulator parameters: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, values: dict) -> SimulatorParams:
        """Build from a plain mapping (e.g. a resolved Hydra ``simulator`` group); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown simulator parameters: {unknown}")
        return cls(**values)

    @property
    def n_parts(self) -> int:
        return -(-self.n_customers // self.customers_per_part)


def _part_ids(params: SimulatorParams, part_idx: int) -> np.ndarray:
    lo = part_idx * params.customers_per_part
    hi = min(lo + params.customers_per_part, params.n_customers)
    return np.arange(lo + 1, hi + 1, dtype=np.int64)


def _market(params: SimulatorParams) -> np.ndarray:
    """The monthly market swing shared by every customer (so it depends on the seed only)."""
    rng = np.random.default_rng([params.seed, 2**31 - 1])
    return rng.normal(0.0, params.balances["market_sd_monthly"], params.n_months)


def simulate_part(params: SimulatorParams, part_idx: int) -> dict[str, pd.DataFrame]:
    """All tables for one bucket of customers; depends only on (params, part_idx)."""
    if not 0 <= part_idx < params.n_parts:
        raise ValueError(f"part_idx {part_idx} outside 0..{params.n_parts - 1}")
    rng = np.random.default_rng([params.seed, part_idx])
    cal = Calendar.from_start(str(params.start_month), params.n_months)
    ids = _part_ids(params, part_idx)
    pop = draw_population(
        rng,
        ids.size,
        params.n_months,
        int(cal.start_ms[0]),
        cal.start_ms,
        population=params.population,
        messy=params.messy,
        balances=params.balances,
        loans=params.loans,
        personas=params.personas,
    )
    hist = run_months(
        rng,
        pop,
        cal,
        _market(params),
        population=params.population,
        balances=params.balances,
        loans=params.loans,
        amounts=params.amounts,
        churn=params.churn,
        campaigns=params.campaigns,
        adoption=params.adoption,
        interactions=params.interactions,
        personas=params.personas,
        seasons=params.seasons,
    )
    transactions, adb_liquid = build_transactions(rng, ids, part_idx, pop, hist, cal, params.channels)
    return {
        "customers": build_customers(ids, pop, hist),
        "balances": build_balances(ids, hist, adb_liquid, cal),
        "transactions": transactions,
        "holdings": build_holdings(ids, hist),
        "interactions": build_interactions(rng, ids, hist, cal),
        "ground_truth": build_ground_truth(ids, pop, hist, cal),
        "ground_truth_monthly": build_ground_truth_monthly(ids, pop, hist, cal),
    }


def simulate_bank(params: SimulatorParams) -> dict[str, pd.DataFrame]:
    """The whole simulated bank in memory (small banks, tests); identical to what write_simulated_bank writes.

    Keys: customers, balances, transactions, holdings, interactions, ground_truth, ground_truth_monthly.
    """
    parts = [simulate_part(params, i) for i in range(params.n_parts)]
    return {k: pd.concat([p[k] for p in parts], ignore_index=True) for k in parts[0]}


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(df, preserve_index=False)


def _write_part(args: tuple[SimulatorParams, int, str]) -> tuple[int, dict[str, int], pd.DataFrame]:
    """Simulate one part and write its Parquet files; returns (part, rows per table, its ground truth)."""
    params, part_idx, tmp = args
    tables = simulate_part(params, part_idx)
    rows = {}
    for name in PART_TABLES:
        pq.write_table(_to_arrow(tables[name]), Path(tmp) / name / f"part-{part_idx:05d}.parquet")
        rows[name] = len(tables[name])
    return part_idx, rows, tables["ground_truth"]


def write_simulated_bank(params: SimulatorParams, out_dir: Path, progress: bool = True) -> dict[str, int]:
    """Stream the simulated bank to ``out_dir`` part by part; returns rows per table.

    Writes into a temporary sibling folder and renames it into place at the end, so a killed run leaves no
    half dataset (an existing ``out_dir`` is replaced only then). Memory is bounded by ``workers`` parts.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    for name in PART_TABLES:
        (tmp / name).mkdir(parents=True)
    rows = dict.fromkeys((*PART_TABLES, "ground_truth"), 0)
    tasks = [(params, i, str(tmp)) for i in range(params.n_parts)]
    writer = None
    try:
        bar = tqdm(total=params.n_parts, desc="simulating parts", unit="part", disable=not progress)
        if params.workers > 1 and params.n_parts > 1:
            pool = multiprocessing.get_context("spawn").Pool(min(params.workers, params.n_parts))
            results = pool.imap(_write_part, tasks, chunksize=1)
        else:
            pool = None
            results = map(_write_part, tasks)
        try:
            for _, part_rows, truth in results:
                for k, v in part_rows.items():
                    rows[k] += v
                table = _to_arrow(truth)
                if writer is None:
                    writer = pq.ParquetWriter(tmp / "ground_truth.parquet", table.schema)
                writer.write_table(table)
                rows["ground_truth"] += len(truth)
                bar.update(1)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
            bar.close()
        writer.close()
        writer = None
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    except BaseException:
        if writer is not None:
            writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return rows


def params_as_dict(params: SimulatorParams) -> dict:
    """The parameters as a plain dict (for logging a run's resolved configuration)."""
    return asdict(params)

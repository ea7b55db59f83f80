"""Simulate a bank, validate what was written, and summarise it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from bankseg.data.run_lock import out_dir_lock
from bankseg.data.simulate import SimulatorParams, write_simulated_bank

log = logging.getLogger(__name__)


@dataclass
class SimulationSummary:
    """What a simulation produced: rows per table, bytes on disk, and the validation outcome."""

    out_dir: Path
    rows: dict[str, int]
    bytes_on_disk: int
    validation: dict = field(default_factory=dict)

    def render(self) -> str:
        lines = [f"Simulated bank written to {self.out_dir}  ({self.bytes_on_disk / 2**20:,.1f} MiB on disk)"]
        lines += [f"  {name:<22} {n:>14,} rows" for name, n in self.rows.items()]
        if self.validation:
            lines.append(
                "  validation: {status}; {n_rejected:,} rows set aside (rejects in {rejects_path})".format(
                    **self.validation
                )
            )
        return "\n".join(lines)


def folder_size(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def run_simulate(params: SimulatorParams, out_dir: Path, validation: dict | None = None) -> SimulationSummary:
    """Write the simulated bank to ``out_dir``; when ``validation`` is given, validate it with those settings.

    Validation raises :class:`bankseg.data.validate.DataValidationError` listing every problem; rows that can be
    set aside are written to ``out_dir/_validation/rejects.parquet`` with their reason.
    """
    out_dir = Path(out_dir)
    with out_dir_lock(out_dir, "simulate"):  # one writer per folder; a killed run's .tmp-* sibling goes first
        rows = write_simulated_bank(params, out_dir)
    outcome: dict = {}
    if validation is not None:
        from bankseg.data.validate import validate_dataset_folder

        report_dir = out_dir / "_validation"
        result = validate_dataset_folder(out_dir, report_dir, **validation)
        outcome = {
            "status": "passed",
            "n_rejected": int(sum(c.n_rejected for c in result.counts.values())),
            "rejects_path": result.rejects_path,
        }
    summary = SimulationSummary(out_dir=out_dir, rows=rows, bytes_on_disk=folder_size(out_dir), validation=outcome)
    print(summary.render())
    return summary

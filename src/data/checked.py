"""The one door every job goes through to read a dataset folder: validate it, then read only the kept rows.

:func:`checked_dataset` runs :func:`bankseg.data.validate.validate_dataset_folder` with the job's validation
settings (conf/validation), so bankseg-features, -train, -tune, -promote, -export, -score and -report give the
same verdicts on the same folder: one :class:`~bankseg.data.validate.DataValidationError` listing every problem
(missing or empty required tables, unreadable files, wrong types, implausible customers, too many bad rows),
or the rows set aside in ``rejects.parquet`` with their reasons. The job then reads :attr:`CheckedDataset.path`:
the folder itself when nothing was set aside, else a copy holding only the kept rows (tables without rejects
are linked, not copied), so a rejected row (a duplicated ``txn_id``, an implausible amount, an orphan) never
reaches a feature. :meth:`CheckedDataset.check_as_of` refuses as_of dates outside the data's own range, naming
the range; :meth:`CheckedDataset.record` is what the job keeps in its summary and MLflow run (counts, warnings
such as dropped extra columns, reject reasons; never row values or customer ids).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bankseg.data import io
from bankseg.data.schema import TABLE_NAMES
from bankseg.data.validate import OPTIONAL_TABLES, Bounds, FolderValidationSummary, validate_dataset_folder

REJECTS_FILE = "rejects.parquet"
RECORD_ARTIFACT = "validation.json"


@dataclass(frozen=True)
class ValidationSettings:
    """The job's validation policy (conf/validation/default.yaml); see :mod:`bankseg.data.validate`."""

    max_reject_fraction: float = 0.01
    extra_columns: str = "drop"
    as_of_today: str | None = None
    bounds: Bounds = field(default_factory=Bounds)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | ValidationSettings | None) -> ValidationSettings:
        if isinstance(cfg, ValidationSettings):
            return cfg
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"validation: unknown settings {unknown}")
        bounds = Bounds.from_dict(cfg.pop("bounds", None))
        as_of_today = cfg.pop("as_of_today", None)
        return cls(**cfg, as_of_today=None if as_of_today is None else str(as_of_today), bounds=bounds)


@dataclass
class CheckedDataset:
    """A validated dataset folder: where to read its kept rows, and what validation found."""

    source: Path  # the folder the job was given
    path: Path  # the folder to read: ``source`` itself, or a copy holding only the kept rows
    summary: FolderValidationSummary
    rejects: pd.DataFrame  # one row per rejected data row: table, row, customer_id, txn_id, reason

    @property
    def month_range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last balances month the data covers (after setting rejected months aside)."""
        start, end = self._range()
        return start, (end - pd.Timedelta(days=1)).to_period("M").start_time

    def _range(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        if self.summary.date_range is None:
            raise ValueError(f"dataset folder {self.source}: no balances month, so no range of dates to work in")
        return self.summary.date_range

    def check_as_of(self, dates: Iterable[pd.Timestamp | str], what: str = "as_of") -> None:
        """Refuse dates outside the data's range: an as_of must come after its first day, at most the day after.

        Features use the data strictly before as_of, so an as_of on or before the first day sees no history and
        one after the data's end would score customers on months that are not there.
        """
        start, end = self._range()
        dates = sorted({pd.Timestamp(d) for d in dates})
        outside = [d for d in dates if not start < d <= end]
        if outside:
            first, last = self.month_range
            shown = ", ".join(d.date().isoformat() for d in outside[:5])
            raise ValueError(
                f"{what} {shown} outside the data's range: {self.source} covers {first:%Y-%m} to {last:%Y-%m} "
                f"(balances months), so as_of must be after {start.date()} and at most {end.date()}"
            )

    def record(self) -> dict[str, Any]:
        """Counts, warnings and reject reasons (no values, no ids in reasons) for a summary or MLflow."""
        s = self.summary
        reasons = self.rejects.groupby(["table", "reason"]).size() if len(self.rejects) else pd.Series(dtype=int)
        return {
            "status": "accepted",
            "date_range": [str(t.date()) for t in s.date_range] if s.date_range else None,
            "counts": {name: asdict(c) for name, c in s.counts.items()},
            "rows_rejected": len(self.rejects),
            "rejects_by_reason": {f"{t}: {r}": int(n) for (t, r), n in reasons.items()},
            "warnings": [f"{w.table}: {w.message} [{w.check}] ({w.n_rows} rows)" for w in s.warnings],
        }

    def log_to_mlflow(self) -> None:
        """Log :meth:`record` into the active MLflow run (see :func:`log_record`)."""
        log_record(self.record())


def log_record(record: Mapping[str, Any]) -> None:
    """Log a validation record into the active MLflow run: ``validation.json``, tags and metrics."""
    import mlflow

    mlflow.log_dict(dict(record), RECORD_ARTIFACT)
    mlflow.set_tags({"bankseg.validation.status": record["status"],
                     "bankseg.validation.warnings": str(len(record["warnings"]))})
    mlflow.log_metric("validation/rows_rejected", float(record["rows_rejected"]))
    mlflow.log_metric("validation/warnings", float(len(record["warnings"])))


@contextmanager
def checked_dataset(data_path: Path | str, settings: Mapping[str, Any] | ValidationSettings | None = None,
                    work_dir: Path | str | None = None) -> Iterator[CheckedDataset]:
    """Validate a dataset folder and yield where to read its kept rows; the copy of kept rows goes at exit.

    ``work_dir`` receives ``rejects.parquet`` and ``validation_summary.json`` (kept after the job); None uses a
    temporary folder. Raises :class:`~bankseg.data.validate.DataValidationError` (every problem in one error)
    before anything else reads the data.
    """
    source = Path(data_path)
    if not source.is_dir():
        raise FileNotFoundError(f"data.path {source} is not a dataset folder (run bankseg-simulate first?)")
    policy = ValidationSettings.from_dict(settings)
    with tempfile.TemporaryDirectory(prefix="bankseg-checked-") as tmp:
        out = Path(work_dir) if work_dir is not None else Path(tmp)
        summary = validate_dataset_folder(
            source, out, max_reject_fraction=policy.max_reject_fraction, as_of_today=policy.as_of_today,
            extra_columns=policy.extra_columns, bounds=policy.bounds,
        )
        rejects = pd.read_parquet(summary.rejects_path) if summary.rejects_path else pd.DataFrame(
            columns=["table", "row", "customer_id", "txn_id", "reason"])
        kept_dir = None
        absent = [name for name in OPTIONAL_TABLES if io.table_path(source, name) is None]
        try:
            if len(rejects) or absent:
                kept_dir = Path(tmp) / f"kept-{uuid.uuid4().hex[:8]}"
                _write_kept(source, rejects, kept_dir)
            yield CheckedDataset(source, kept_dir or source, summary, rejects)
        finally:
            if kept_dir is not None:
                shutil.rmtree(kept_dir, ignore_errors=True)


def _write_kept(source: Path, rejects: pd.DataFrame, dest: Path) -> None:
    """A dataset folder of the kept rows: each table linked, or copied without its rejected rows.

    An absent optional table (validation warned about it) is written empty, so the features are built as for
    customers with no such rows, by every engine.
    """
    dest.mkdir(parents=True)
    by_table = rejects.groupby("table")["row"]
    dropped = {str(name): rows.to_numpy(dtype="int64") for name, rows in by_table}
    for name in TABLE_NAMES:
        if io.table_path(source, name) is not None:
            io.copy_table_without_rows(source, name, dropped.get(name, []), dest)
        elif name in OPTIONAL_TABLES:
            io.write_empty_table(dest, name)


def write_record(record: Mapping[str, Any], path: Path | str) -> Path:
    """Write a validation record (or a summary holding one) as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return path

"""Turn a real data source into a canonical dataset folder with its adapter, validate it, and summarise it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Data sources bankseg-ingest can convert (``data.adapter_kind`` or the data config's name).
ADAPTERS: tuple[str, ...] = ("berka",)


@dataclass
class IngestSummary:
    """What an ingestion produced: rows per table, rows the adapter set aside (by reason), the validation."""

    out_dir: Path
    rows: dict[str, int]
    set_aside: list[dict[str, Any]]
    source_counts: dict[str, dict[str, int]]
    validation: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        lines = [f"Canonical dataset written to {self.out_dir}"]
        lines += [f"  {name:<22} {n:>14,} rows" for name, n in self.rows.items()]
        for source, counts in self.source_counts.items():
            lines.append(f"  source {source:<15} read {counts['read']:>10,}, used {counts['used']:>10,}")
        lines += [f"    set aside: {row['source']}: {row['reason']}: {row['n_rows']:,}" for row in self.set_aside]
        if self.validation:
            lines.append("  validation: {status}; {n_rejected:,} rows set aside (rejects in {rejects_path})"
                         .format(**self.validation))
        return "\n".join(lines)


def run_ingest(data_cfg: Mapping[str, Any], validation: Mapping[str, Any] | None = None) -> IngestSummary:
    """Convert ``data_cfg["source"]`` into the canonical dataset folder ``data_cfg["path"]`` and validate it.

    The adapter is chosen by the data config's ``adapter_kind`` (default: its ``name``); its settings are the
    config's ``adapter`` mapping. Every source row is used or set aside with a reason (counted in the summary
    and in the adapter's report beside the tables); validation then writes ``<path>/_validation/rejects.parquet``
    and its summary, or raises :class:`bankseg.data.validate.DataValidationError` listing every problem.
    """
    kind = str(data_cfg.get("adapter_kind") or data_cfg.get("name"))
    if data_cfg.get("kind") == "flat":
        raise ValueError(f"data source {data_cfg.get('name')!r} is a flat snapshot: bankseg-train reads it as it is "
                         f"(data={data_cfg.get('name')}); nothing to ingest")
    if kind not in ADAPTERS:
        raise ValueError(f"no adapter for data source {kind!r}: bankseg-ingest converts {list(ADAPTERS)}")
    missing = [key for key in ("source", "path") if not data_cfg.get(key)]
    if missing:
        raise ValueError(f"data config {data_cfg.get('name')!r} lacks {missing}: where to read the source and "
                         f"where to write the canonical tables")
    from bankseg.data.adapters import berka_settings, write_berka_dataset

    out_dir = Path(data_cfg["path"])
    conversion = write_berka_dataset(Path(data_cfg["source"]), out_dir, **berka_settings(data_cfg.get("adapter") or {}))
    outcome: dict[str, Any] = {}
    if validation is not None:
        from bankseg.data.validate import validate_dataset_folder

        result = validate_dataset_folder(out_dir, out_dir / "_validation", **dict(validation))
        outcome = {"status": "passed", "n_rejected": int(sum(c.n_rejected for c in result.counts.values())),
                   "rejects_path": result.rejects_path}
    report = conversion.to_json()
    return IngestSummary(out_dir=out_dir, rows=report["tables"], set_aside=report["set_aside"],
                         source_counts=report["source_counts"], validation=outcome)

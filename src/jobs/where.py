"""Print where the pipeline's outputs are (the end of `make run`)."""

from __future__ import annotations

import json
from pathlib import Path

OUTPUTS = (
    ("simulated bank", "data/simulated"),
    ("validation (rejects, summary)", "data/simulated/_validation"),
    ("features and labels", "data/features"),
    ("scores (segments, rejects, summary)", "data/scores/latest"),
    ("model review reports", "reports/churn/model_report.html"),
    ("", "reports/conversion/model_report.html"),
    ("", "reports/upgrade/model_report.html"),
    ("segment profile report", "reports/segments/segment_report.html"),
)


def describe_outputs(root: Path) -> str:
    """A short guide to what the pipeline produced under ``root`` and how to look at it."""
    lines = ["", "bankseg: the pipeline's outputs"]
    for label, rel in OUTPUTS:
        path = root / rel
        state = "" if path.exists() else "   (missing)"
        lines.append(f"  {label:<38} {path}{state}")
    for record in sorted((root / "outputs" / "models").glob("*.json")):
        info = json.loads(record.read_text())
        auc = info.get("metrics", {}).get("oot/auc")
        score = f", out-of-time AUC {auc:.3f}" if auc is not None else ""
        name = info.get("registered_name") or f"bankseg-{record.stem}"
        lines.append(f"  registered {name} version {info.get('version')}{score}")
    lines += [
        "",
        f"  MLflow UI: make mlflow-ui   (or .venv/bin/mlflow ui --backend-store-uri sqlite:///{root}/mlruns/mlflow.db)",
        "  Reports are self-contained HTML: open them in any browser.",
    ]
    return "\n".join(lines)


# A real source's pipeline (make run-berka) writes under data/<source>, outputs/<source> and reports/<source>.
SOURCE_OUTPUTS = (
    ("canonical tables (and _validation/)", "data/{source}/canonical"),
    ("features and labels", "data/{source}/features"),
    ("scores (segments, rejects, summary)", "data/{source}/scores/latest"),
    ("model review report", "reports/{source}/conversion/model_report.html"),
    ("segment profile report", "reports/{source}/segments/segment_report.html"),
)


def describe_source_outputs(root: Path, source: str) -> str:
    """Where a real source's pipeline put its outputs, and the models it registered."""
    lines = ["", f"bankseg: the {source} pipeline's outputs"]
    for label, rel in SOURCE_OUTPUTS:
        path = root / rel.format(source=source)
        lines.append(f"  {label:<38} {path}{'' if path.exists() else '   (missing)'}")
    for record in sorted((root / "outputs" / source / "models").glob("*.json")):
        info = json.loads(record.read_text())
        auc = info.get("metrics", {}).get("oot/auc")
        lines.append(f"  registered {info.get('registered_name') or info.get('name')} version {info.get('version')}"
                     + (f", out-of-time AUC {auc:.3f}" if auc is not None else ""))
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 1:
        print(describe_source_outputs(Path.cwd(), sys.argv[1]))
    else:
        print(describe_outputs(Path.cwd()))

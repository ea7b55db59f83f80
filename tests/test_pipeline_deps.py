"""dvc.yaml (issue 14): every folder or file a stage's command reads is a dependency of that stage.

A stage that reads a folder DVC does not know about is not rerun when that folder changes, and its output is
stale without anyone noticing. Paths named on a command line (``data.path=``, ``features_path=``,
``scoring_dir=``) are read by the job; ``out_dir=`` and ``result_file=`` are what it writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
READ_SETTINGS = ("data.path", "features_path", "scoring_dir")


def _stages() -> dict[str, dict]:
    """The stages of dvc.yaml, a foreach stage expanded once per item."""
    stages = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        if "foreach" not in stage:
            stages[name] = stage
            continue
        for item in stage["foreach"]:
            text = yaml.safe_dump(stage["do"]).replace("${item}", str(item))
            stages[f"{name}@{item}"] = yaml.safe_load(text)
    return stages


def _paths(entries) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


def test_every_path_a_command_reads_is_a_dependency():
    stages = _stages()
    assert {"features", "train@churn", "export", "score", "segment_report"} <= set(stages)
    for name, stage in stages.items():
        deps = _paths(stage.get("deps"))
        read = {m.group(2) for m in re.finditer(r"(\S+)=(\S+)", stage["cmd"]) if m.group(1) in READ_SETTINGS}
        assert read - deps == set(), f"stage {name} reads {sorted(read - deps)} without declaring them in deps"


def test_every_dependency_exists_or_is_made_by_another_stage():
    stages = _stages()
    made = set().union(*(_paths(s.get("outs")) for s in stages.values()))
    for name, stage in stages.items():
        for dep in _paths(stage.get("deps")):
            assert dep in made or (ROOT / dep).exists(), f"stage {name}: dependency {dep} neither exists nor is made"

"""The package installs as `bankseg` from src/, ships its configs, and nothing imports `src.`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _packages_on_disk() -> set[str]:
    """Every folder under src/ holding Python modules, as a bankseg.* package name."""
    found = {"bankseg"}
    for init in (ROOT / "src").rglob("*.py"):
        rel = init.parent.relative_to(ROOT / "src")
        if "__pycache__" in rel.parts:
            continue
        found.add(".".join(("bankseg", *rel.parts)) if rel.parts else "bankseg")
    return found


def test_every_subpackage_on_disk_is_listed_for_the_wheel():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    missing = _packages_on_disk() - listed
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert "bankseg.conf" in listed, "the Hydra configs must ship inside the wheel"


def test_nothing_imports_src():
    pattern = re.compile(r"^\s*(from|import)\s+src(\.|\s|$)", re.MULTILINE)
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("src", "tests", "benchmarks", "notebooks")
        for p in (ROOT / folder).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert not offenders, f"import bankseg, not src: {offenders}"


def test_every_console_script_points_at_an_importable_main():
    import importlib

    for name, target in _pyproject()["project"]["scripts"].items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), f"{name} -> {target}"


@pytest.mark.slow
def test_non_editable_install_imports_from_another_directory(tmp_path):
    """`pip install .` (a real wheel, not the editable link) gives a working package with its configs."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheel_dir, ROOT],
        check=True,
        env=env,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("bankseg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bankseg/conf/simulate.yaml" in names
    for pkg in _pyproject()["tool"]["setuptools"]["packages"]:
        assert any(n.startswith(pkg.replace(".", "/") + "/") for n in names), f"{pkg} not in the wheel"

    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel],
        check=True,
        env=env,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import bankseg, bankseg.cli, pathlib;"
        "print(bankseg.__file__);"
        "print((pathlib.Path(bankseg.cli.CONFIG_DIR) / 'simulate.yaml').is_file())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env={**env, "PYTHONPATH": str(site)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert Path(out[0]).is_relative_to(site), f"imported {out[0]}, not the installed wheel"
    assert out[1] == "True", "conf/ did not ship inside the wheel"

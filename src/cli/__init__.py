"""Hydra entry points, one module per job. Only this package touches DictConfig.

Each job module has a ``main()`` (the console script) decorated with :func:`hydra.main`; the work is a plain
function elsewhere in the package that tests call directly.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# Hydra needs an absolute config directory: a relative config_path breaks console scripts (STACK.md).
# conf/ is shipped inside the package as bankseg.conf (pyproject.toml maps it), so this works for editable
# installs (the project's conf/) and for wheels alike.
CONFIG_DIR: str = str(Path(str(files("bankseg.conf"))).resolve())
HYDRA_VERSION_BASE = "1.3"

"""Hydra entry points, one module per job. Only this package touches DictConfig.

Each job module has a ``main()`` (the console script) decorated with :func:`hydra.main`; the work is a plain
function elsewhere in the package that tests call directly.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

# Hydra needs an absolute config directory: a relative config_path breaks console scripts (STACK.md).
# conf/ is shipped inside the package as bankseg.conf (pyproject.toml maps it), so this works for editable
# installs (the project's conf/) and for wheels alike.
CONFIG_DIR: str = str(Path(str(files("bankseg.conf"))).resolve())
HYDRA_VERSION_BASE = "1.3"
#: The user's own config folder (data/, model/, experiment/ ...), outside the package.
CONFIG_DIR_VARIABLE = "BANKSEG_CONFIG_DIR"


def user_config_search_path() -> str | None:
    """``file://$BANKSEG_CONFIG_DIR`` (checked to be a folder), or None when the variable is unset."""
    folder = os.environ.get(CONFIG_DIR_VARIABLE)
    if not folder:
        return None
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"{CONFIG_DIR_VARIABLE}={folder} is not a folder: create it (with data/, model/, "
                         f"experiment/ subfolders) or unset the variable")
    return f"file://{path}"


def on_search_path(config_file: Path | str) -> bool:
    """Whether a job finds ``config_file`` (``<folder>/<group>/<name>.yaml``): the package's conf/ or the user's."""
    folder = Path(config_file).resolve().parent.parent
    user = user_config_search_path()
    return folder == Path(CONFIG_DIR) or (user is not None and f"file://{folder}" == user)


class UserConfigSearchPath(SearchPathPlugin):
    """Adds ``$BANKSEG_CONFIG_DIR`` to the search path of every job (and of ``hydra.compose`` in tests).

    It comes after the package's conf/: a user's ``data/<name>.yaml`` adds the choice ``data=<name>``, and a
    shipped config of the same name wins over it.
    """

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        path = user_config_search_path()
        if path is not None:
            search_path.append(provider="bankseg-user", path=path)


# Registered on import of the entry points (hydra.main and compose both look it up when they build the path);
# a hydra_plugins namespace package would need a second top-level package in the wheel.
Plugins.instance().register(UserConfigSearchPath)

"""MLflow tracking for every job: where runs go, and what each run records (DESIGN.md, "Tracking and registry").

A job calls :func:`configure_tracking` once with the ``mlflow`` config group, then wraps its work in
:func:`start_job_run`, which records the resolved config (``config.yaml`` artifact and flattened params), the
git commit, the data fingerprint and the job name. Metrics go through :func:`log_metrics_by_split` so they are
named ``split/metric`` (``train/auc``, ``oot/ks``).

The embedded default store is a SQLite file, ``<project>/mlruns/mlflow.db``, with artifacts under
``<project>/mlruns/artifacts``; an ``http(s)://`` tracking URI sends the same calls to an ``mlflow server``.
The URI is always set explicitly: MLflow's own fallback picks the file store when ./mlruns holds old
file-store experiments, and that store now refuses to work (STACK.md).

Nothing here logs environment variables or data rows; the config holds no personal data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import pandas as pd
import yaml
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH

from bankseg.data.run_lock import OutDirLock, out_dir_lock

log = logging.getLogger(__name__)

# Run tags written by start_job_run. The git commit uses MLflow's own key so the UI shows it.
TAG_JOB = "bankseg.job"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_GIT_DIRTY = "bankseg.git_dirty"
TAG_DATA_FINGERPRINT = "bankseg.data_fingerprint"
TAG_FAILURE = "bankseg.failure"
PARAM_DATA_FINGERPRINT = "data_fingerprint"
CONFIG_ARTIFACT = "config.yaml"
TRUNCATION_MARK = "...[truncated]"

_LOCAL_DB_SCHEMES = ("sqlite",)
_INVALID_KEY_CHARS = re.compile(r"[^\w.\- :/]")


# ------------------------------------------------------------------------------------------------- the store
def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifact root for a new experiment when the config leaves it unset.

    For a SQLite store ``sqlite:///<dir>/mlflow.db`` it is ``<dir>/artifacts`` (so the default store keeps
    everything under mlruns/, and a store moved by MLFLOW_TRACKING_URI keeps its artifacts beside it). For a
    server (or any other store) it is None: the server decides (``--default-artifact-root`` or its artifact
    proxy).
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme not in _LOCAL_DB_SCHEMES:
        return None
    db_path = _sqlite_path(tracking_uri)
    return (db_path.parent / "artifacts").as_uri()


def _sqlite_path(tracking_uri: str) -> Path:
    # sqlite:////abs/path.db -> /abs/path.db ; sqlite:///rel.db -> rel.db (relative to the cwd)
    raw = unquote(tracking_uri.split(":///", 1)[1]) if ":///" in tracking_uri else ""
    if not raw or raw == ":memory:":
        raise ValueError(f"tracking_uri {tracking_uri!r} does not name a SQLite file")
    return Path(raw).expanduser().resolve()


def _artifact_uri(location: str) -> str:
    """An absolute URI for an artifact location given as a URI or as a plain path."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", location) or location.startswith("mlflow-artifacts:"):
        return location
    return Path(location).expanduser().resolve().as_uri()


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) readable by this user only (0700); an existing folder is left as is."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        path.chmod(0o700)  # mkdir's mode is filtered by the umask; parents made here keep the umask's mode
    return path


def create_private_store(db_path: Path) -> None:
    """The folder and the file of a new SQLite store, private to this user (0700 and 0600).

    The store holds every run's params, tags and the registry; its artifacts folder (created the same way)
    holds the models, which scoring unpickles: nobody else on the machine may read or replace them.
    SQLite accepts the empty file as a new database and gives its journal the file's mode.
    """
    private_dir(db_path.parent)
    if not db_path.exists():
        os.close(os.open(db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def configure_tracking(
    tracking_uri: str,
    experiment_name: str,
    artifact_location: str | None = None,
    registry_uri: str | None = None,
) -> str:
    """Point MLflow at a store and an experiment (created if missing); return the experiment id.

    The parameter names are the keys of conf/mlflow/default.yaml, so an entry point can call
    ``configure_tracking(**OmegaConf.to_container(cfg.mlflow, resolve=True))``. ``registry_uri`` None means the
    model registry lives in the tracking store. ``artifact_location`` (a path or URI) only applies when the
    experiment is created; None picks :func:`default_artifact_location`. For a SQLite store the database's
    folder is created if needed. An experiment of that name that was deleted is refused (restore it with
    ``mlflow experiments restore`` or choose another name).
    """
    if not tracking_uri:
        raise ValueError("tracking_uri is empty: set mlflow.tracking_uri or MLFLOW_TRACKING_URI")
    if not experiment_name:
        raise ValueError("experiment_name is empty")
    if urlparse(tracking_uri).scheme in _LOCAL_DB_SCHEMES:
        create_private_store(_sqlite_path(tracking_uri))
    mlflow.set_tracking_uri(tracking_uri)
    # mlflow.set_registry_uri also exports MLFLOW_REGISTRY_URI, which every later subprocess would inherit (a job
    # started by this one would register into this store whatever its own config says): keep it in-process.
    inherited = os.environ.get("MLFLOW_REGISTRY_URI")
    mlflow.set_registry_uri(registry_uri or tracking_uri)
    if inherited is None:
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    else:
        os.environ["MLFLOW_REGISTRY_URI"] = inherited

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        location = artifact_location or default_artifact_location(tracking_uri)
        if location is not None:
            location = _artifact_uri(location)
            if location.startswith("file:"):
                private_dir(Path(unquote(urlparse(location).path)))
        try:
            experiment_id = client.create_experiment(experiment_name, artifact_location=location)
        except MlflowException:  # another job (a parallel dvc stage) created it meanwhile
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                raise
            experiment_id = experiment.experiment_id
    elif experiment.lifecycle_stage != "active":
        raise ValueError(
            f"experiment {experiment_name!r} (id {experiment.experiment_id}) is deleted in {tracking_uri}: "
            "restore it or choose another experiment_name"
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


# ------------------------------------------------------------------------------------------------------- git
def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit checked out where ``path`` lives (default: this package's source), or None.

    None outside a git checkout, in a repository with no commit yet, or without a git executable.
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    return _git(["rev-parse", "--verify", "--quiet", "HEAD"], where) or None


def git_dirty(path: str | Path | None = None) -> bool | None:
    """True when tracked files differ from the commit (untracked files do not count); None outside git."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    if git_commit(where) is None:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return None if status is None else bool(status)


# ---------------------------------------------------------------------------------------------------- params
def _plain(value: Any) -> Any:
    """Config values as YAML-safe builtins: mappings and sequences recursed, anything else unknown as str."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _param_value(value: Any) -> str:
    if isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    if len(text) > MAX_PARAM_VAL_LENGTH:
        text = text[: MAX_PARAM_VAL_LENGTH - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    return text


def _param_key(key: str) -> str:
    key = _INVALID_KEY_CHARS.sub("_", key)
    return key[:MAX_ENTITY_KEY_LENGTH]


def flatten_params(config: Mapping[str, Any], sep: str = ".") -> dict[str, str]:
    """Nested config as MLflow params: ``{"a": {"b": 1}}`` -> ``{"a.b": "1"}``.

    Lists are one param holding their JSON text (``[1, 2]``); an empty mapping is kept as ``{}``. Values are cut
    to MLflow's 6000-character limit (ending in ``...[truncated]``; the full config is in the config.yaml
    artifact). Characters MLflow refuses in keys become ``_``.
    """
    flat: dict[str, str] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{sep}{key}" if prefix else str(key)
            if isinstance(value, Mapping) and value:
                walk(value, name)
            else:
                flat[_param_key(name)] = _param_value(value)

    walk(_plain(config), "")
    return flat


# ------------------------------------------------------------------------------------------------------ runs
class JobTerminated(SystemExit):
    """The job got SIGTERM: raised in the main thread so every context manager unwinds (runs end FAILED)."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the body runs, SIGTERM raises :class:`JobTerminated` (exit status 143) instead of killing the process.

    Without it a terminated job leaves its MLflow run RUNNING and its temporary folders behind. Only the main
    thread can install a handler; elsewhere this does nothing. The previous handler is restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        raise JobTerminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def private_files() -> Iterator[None]:
    """While the body runs, new files and folders are private to this user (umask 077): outputs name customers.

    A file meant to be shared sets its own mode (the HTML reports do). The previous umask is restored.
    """
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def mark_run_failed(run_id: str, reason: str) -> bool:
    """End a run left RUNNING by a dead job as FAILED with ``reason`` (tag ``bankseg.failure``); True if it did.

    A run that already ended, or that is not in this store, is left alone.
    """
    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    if run.info.status != "RUNNING":
        return False
    client.set_tag(run_id, TAG_FAILURE, reason)
    client.set_terminated(run_id, status="FAILED")
    log.warning("MLflow run %s of a dead job marked FAILED (%s)", run_id, reason)
    return True


def check_run_settings() -> None:
    """Checks that must pass before a job records or registers anything: a set BANKSEG_PSEUDONYM_KEY is valid.

    An unset key is judged where ids are pseudonymised (it falls back to the development key with a warning).
    """
    from bankseg.data.privacy import KEY_ENV, pseudonymisation_key

    if KEY_ENV in os.environ:
        pseudonymisation_key()


@contextmanager
def start_job_run(
    job_name: str,
    config: Mapping[str, Any],
    data_fingerprint: str | None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
    run_name: str | None = None,
    out_dir: Path | str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Run one job inside an MLflow run that records what produced it; yields the active run.

    ``config`` is the resolved config as plain containers (``OmegaConf.to_container(cfg, resolve=True)``); it is
    logged whole as ``config.yaml`` and flattened into params (:func:`flatten_params`). Tags: the job name
    (``bankseg.job``), the git commit (``mlflow.source.git.commit``) and dirty flag (``bankseg.git_dirty``)
    when run from a checkout, the data fingerprint (``bankseg.data_fingerprint``, also the param
    ``data_fingerprint``), and ``tags``. ``nested=True`` opens a child of the active run (one Optuna trial).
    Call :func:`configure_tracking` first.

    Ending cleanly: :func:`check_run_settings` runs before anything is recorded; the run ends FAILED if the body
    raises or the job gets SIGTERM (:func:`sigterm_raises`); what the job creates is private (:func:`private_files`). ``out_dir`` (the folder the job writes) is locked
    for the run (:func:`bankseg.data.run_lock.out_dir_lock`: a second run into it refuses naming this one); a
    dead run's lock is taken over, its temporary folders removed and its MLflow run marked FAILED.
    """
    check_run_settings()
    run_tags = {TAG_JOB: job_name}
    commit = git_commit()
    if commit is not None:
        run_tags[TAG_GIT_COMMIT] = commit
        run_tags[TAG_GIT_DIRTY] = str(git_dirty()).lower()
    if data_fingerprint is not None:
        run_tags[TAG_DATA_FINGERPRINT] = data_fingerprint
    run_tags.update(dict(tags or {}))
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_raises())
        stack.enter_context(private_files())
        lock = stack.enter_context(out_dir_lock(out_dir, job_name)) if out_dir is not None else None
        run = stack.enter_context(mlflow.start_run(run_name=run_name or job_name, nested=nested, tags=run_tags))
        if lock is not None:
            _take_over(lock, run.info.run_id)
        params = flatten_params(config)
        if data_fingerprint is not None:
            params[PARAM_DATA_FINGERPRINT] = data_fingerprint
        mlflow.log_params(params)
        mlflow.log_text(yaml.safe_dump(_plain(config), allow_unicode=True, sort_keys=False), CONFIG_ARTIFACT)
        yield run


def _take_over(lock: OutDirLock, run_id: str) -> None:
    """Record this run in the lock; end the dead holder's run FAILED."""
    if lock.stale is not None and lock.stale.run_id:
        mark_run_failed(lock.stale.run_id, f"killed: pid {lock.stale.pid} died holding {lock.out_dir}; "
                                           f"taken over by run {run_id}")
    lock.set_run_id(run_id)


def log_metrics_by_split(
    metrics: Mapping[str, Mapping[str, float]], step: int | None = None
) -> dict[str, float]:
    """Log ``{"train": {"auc": 0.8}, "oot": {...}}`` as ``train/auc``, ``oot/...``; return what was logged.

    Split and metric names may not contain ``/`` (it separates them). Values must be real numbers; NaN is
    allowed (MLflow records it) so an undefined metric stays visible rather than silently missing.
    """
    flat: dict[str, float] = {}
    problems = []
    for split, by_name in metrics.items():
        for name, value in by_name.items():
            if "/" in split or "/" in name or not split or not name:
                problems.append(f"bad name {split!r}/{name!r}")
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                problems.append(f"{split}/{name} is not a number: {value!r}")
                continue
            if math.isinf(number):
                problems.append(f"{split}/{name} is infinite")
                continue
            flat[f"{split}/{name}"] = number
    if problems:
        raise ValueError("cannot log metrics: " + "; ".join(problems))
    mlflow.log_metrics(flat, step=step)
    return flat


def log_frame(frame: pd.DataFrame, artifact_path: str) -> None:
    """Log a table (decile table, profile, PSI table) as a CSV or Parquet artifact, by the path's suffix.

    ``artifact_path`` is the file's path inside the run's artifacts, e.g. ``"oot/deciles.csv"``. The index is
    not written; reset it first if it carries information. Never log customer-level rows holding personal data.
    """
    path = Path(artifact_path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"artifact_path must end in .csv or .parquet, got {artifact_path!r}")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / path.name
        if suffix == ".csv":
            frame.to_csv(local, index=False)
        else:
            frame.to_parquet(local, index=False)
        parent = path.parent.as_posix()
        mlflow.log_artifact(str(local), artifact_path=None if parent in ("", ".") else parent)


def logged_config(run_id: str) -> dict[str, Any]:
    """The resolved job config a run logged (``config.yaml``, written by :func:`start_job_run`)."""
    import yaml

    return yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml")) or {}

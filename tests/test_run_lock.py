"""Runs that end cleanly (issue 15 item 3): one run per out_dir, a killed run's leftovers cleaned by the next run,
and its MLflow run ended FAILED, whether it died by an exception, SIGTERM or SIGKILL.

The first run is a real child process (a job holding the lock, or inside a job run, then waiting to be killed);
the MLflow store is a temporary SQLite file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest

from bankseg.data.run_lock import OutDirBusyError, lock_path, out_dir_lock
from bankseg.models import tracking

HOLD_LOCK = """
import sys, time
from pathlib import Path
from bankseg.data.run_lock import out_dir_lock
out_dir = Path(sys.argv[1])
with out_dir_lock(out_dir, "score"):
    (out_dir / ".tmp-deadbeef").mkdir(parents=True)
    (out_dir / ".tmp-deadbeef" / "part-00000.parquet").write_bytes(b"half written")
    print("ready", flush=True)
    time.sleep(600)
"""

IN_A_JOB_RUN = """
import sys, time
from pathlib import Path
from bankseg.models import tracking
store, out_dir = sys.argv[1], Path(sys.argv[2])
tracking.configure_tracking(store, experiment_name="killed")
with tracking.start_job_run("score", {"job": "score"}, None, out_dir=out_dir) as run:
    (out_dir / ".tmp-cafe").mkdir(parents=True)
    print(run.info.run_id, flush=True)
    time.sleep(600)
"""


def start(script: str, *args: str) -> tuple[subprocess.Popen, str]:
    """A child process running ``script``; returns it and the first line it printed (once it is ready)."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], stdout=subprocess.PIPE,
                             text=True)
    line = child.stdout.readline().strip()
    assert line, f"the child exited with {child.wait()} before it was ready"
    return child, line


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(var, raising=False)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    tracking.configure_tracking(uri, experiment_name="killed")
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None


def test_a_second_run_into_the_same_out_dir_refuses_naming_the_first(tmp_path: Path) -> None:
    out_dir = tmp_path / "scores"
    first, _ = start(HOLD_LOCK, str(out_dir))
    try:
        with pytest.raises(OutDirBusyError) as refused:
            with out_dir_lock(out_dir, "score"):
                pytest.fail("the second run got the lock")
        message = str(refused.value)
        assert f"pid {first.pid}" in message and socket.gethostname() in message and "started 20" in message
        assert str(out_dir) in message
        # the first run's files are untouched by the refused one
        assert (out_dir / ".tmp-deadbeef" / "part-00000.parquet").exists()
    finally:
        first.kill()
        first.wait()


def test_a_killed_runs_lock_is_taken_over_and_its_temporary_folders_removed(tmp_path: Path, caplog) -> None:
    out_dir = tmp_path / "scores"
    dead, _ = start(HOLD_LOCK, str(out_dir))
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    beside = tmp_path / ".scores.tmp-4242"  # what a killed simulator leaves beside its folder
    beside.mkdir()
    half_file = out_dir / ".features.parquet.0123abcd.tmp"  # an atomic write cut short
    half_file.write_bytes(b"PAR1")
    kept = out_dir / "2025-03-01"
    kept.mkdir()
    with caplog.at_level(logging.WARNING, logger="bankseg.data.run_lock"):
        with out_dir_lock(out_dir, "score") as lock:
            assert lock.stale is not None and lock.stale.pid == dead.pid
            held = json.loads(lock_path(out_dir).read_text())
            assert held["pid"] == os.getpid() and held["job"] == "score"
    assert not (out_dir / ".tmp-deadbeef").exists() and not beside.exists() and not half_file.exists()
    assert kept.is_dir()  # published runs are never touched
    assert f"pid {dead.pid}" in caplog.text and ".tmp-deadbeef" in caplog.text
    assert lock_path(out_dir).read_text() == ""  # released: the next run finds no holder
    assert oct(lock_path(out_dir).stat().st_mode & 0o777) == "0o600"


def test_sigterm_ends_the_job_run_failed(tmp_path: Path, store: str) -> None:
    child, run_id = start(IN_A_JOB_RUN, store, str(tmp_path / "scores"))
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 128 + signal.SIGTERM
    assert mlflow.MlflowClient().get_run(run_id).info.status == "FAILED"
    assert lock_path(tmp_path / "scores").read_text() == ""


def test_the_next_run_ends_a_sigkilled_runs_mlflow_run_failed(tmp_path: Path, store: str) -> None:
    out_dir = tmp_path / "scores"
    child, killed_id = start(IN_A_JOB_RUN, store, str(out_dir))
    child.send_signal(signal.SIGKILL)
    child.wait()
    client = mlflow.MlflowClient()
    assert client.get_run(killed_id).info.status == "RUNNING"  # nothing could run in the killed process
    with tracking.start_job_run("score", {"job": "score"}, None, out_dir=out_dir) as run:
        assert not (out_dir / ".tmp-cafe").exists()
        assert json.loads(lock_path(out_dir).read_text())["run_id"] == run.info.run_id
    killed = client.get_run(killed_id)
    assert killed.info.status == "FAILED"
    assert run.info.run_id in killed.data.tags[tracking.TAG_FAILURE]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_an_exception_ends_the_run_failed_and_releases_the_out_dir(tmp_path: Path, store: str) -> None:
    out_dir = tmp_path / "scores"
    with pytest.raises(ValueError, match="planted"):
        with tracking.start_job_run("score", {"job": "score"}, None, out_dir=out_dir) as run:
            raise ValueError("planted")
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FAILED"
    with out_dir_lock(out_dir, "score") as lock:  # free again, and nobody died holding it
        assert lock.stale is None


def test_a_bad_pseudonym_key_fails_the_job_before_anything_is_recorded(store: str, monkeypatch) -> None:
    monkeypatch.setenv("BANKSEG_PSEUDONYM_KEY", "short")
    with pytest.raises(ValueError, match="BANKSEG_PSEUDONYM_KEY must give 16 to 64 bytes"):
        with tracking.start_job_run("train", {"job": "train"}, None):
            pytest.fail("the job body ran with a bad key")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []

"""The team MLflow server lets in only its users (issue 15 item 5): basic auth, reader and editor roles, private
files, and SIGTERM stopping everything it started.

A real ``mlflow server --app-name basic-auth`` (SQLite backend, proxied artifacts) in a temporary folder; the
admin makes an experiment, a run and a registered model, then a reader and an editor try to change them over
the REST API, as any local user could.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
from sklearn.linear_model import LogisticRegression

from bankseg.models import server as team

pytestmark = pytest.mark.slow

ADMIN = ("admin", "admin-password-for-the-test")
READER = ("rita", "reader-password-1234")
EDITOR = ("eddie", "editor-password-1234")
MODEL = "bankseg-auth-churn"


def call(url: str, method: str, path: str, who: tuple[str, str] | None, payload: dict | None = None,
         body: bytes | None = None) -> int:
    """The HTTP status of one request (basic auth when ``who`` is given)."""
    headers = {"Content-Type": "application/json"}
    if who is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(who).encode()).decode()
    data = body if body is not None else (json.dumps(payload).encode() if payload is not None else None)
    request = urllib.request.Request(f"{url}{path}", method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    """The server, its folder, and what the admin made: a run with a logged model, registered as MODEL v1."""
    root = tmp_path_factory.mktemp("team-auth")
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    with team.running_mlflow_server(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", password=ADMIN[1]) as url:
        team.add_user(url, ADMIN[1], *READER, role="reader")
        team.add_user(url, ADMIN[1], *EDITOR, role="editor")
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
        try:
            mlflow.set_tracking_uri(url)
            experiment_id = mlflow.create_experiment("bankseg-auth-test")
            x = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 2)), columns=["a", "b"])
            with mlflow.start_run(experiment_id=experiment_id) as run:
                info = mlflow.sklearn.log_model(LogisticRegression().fit(x, x["a"] > 0), name="model",
                                                pip_requirements=["scikit-learn"])
            version = mlflow.register_model(info.model_uri, MODEL)
            yield {"url": url, "root": root, "experiment_id": experiment_id, "run_id": run.info.run_id,
                   "version": str(version.version)}
        finally:
            mlflow.set_tracking_uri(None)
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def attempts(world: dict, artifact: str) -> dict[str, tuple[str, str, dict | None, bytes | None]]:
    run_artifacts = f"/api/2.0/mlflow-artifacts/artifacts/{world['experiment_id']}/{world['run_id']}/artifacts"
    return {
        "move champion": ("POST", "/api/2.0/mlflow/registered-models/alias",
                          {"name": MODEL, "alias": "champion", "version": world["version"]}, None),
        "overwrite a model artifact": ("PUT", f"{run_artifacts}/{artifact}", None, b"not a model"),
        "delete the model": ("DELETE", "/api/2.0/mlflow/registered-models/delete", {"name": MODEL}, None),
    }


def test_a_request_without_credentials_or_with_a_wrong_password_gets_401(world):
    url = world["url"]
    assert call(url, "GET", "/api/2.0/mlflow/experiments/search?max_results=5", None) == 401
    assert call(url, "GET", "/api/2.0/mlflow/experiments/search?max_results=5", (READER[0], "guess")) == 401
    assert call(url, "GET", "/api/2.0/mlflow/experiments/search?max_results=5", READER) == 200
    assert call(url, "GET", "/health", None) == 200  # only the health check is open


def test_a_reader_gets_403_on_every_change_and_an_editor_may_make_them(world):
    url = world["url"]
    for what, (method, path, payload, body) in attempts(world, "model/MLmodel").items():
        assert call(url, method, path, READER, payload, body) == 403, what
    client = mlflow.MlflowClient(tracking_uri=url)
    assert MODEL in {m.name for m in client.search_registered_models()}  # nothing changed
    assert "champion" not in client.get_registered_model(MODEL).aliases
    # the editor role, on a model and a run the admin made (not the editor's own)
    for what, (method, path, payload, body) in attempts(world, "editor-notes.txt").items():
        assert call(url, method, path, EDITOR, payload, body) == 200, what
    assert MODEL not in {m.name for m in client.search_registered_models()}


def test_the_server_files_are_private_and_the_admin_password_only_in_its_file(world):
    root = world["root"]
    for folder in (root / "artifacts", root / "auth"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    for path in (root / "auth" / "basic_auth.ini", root / "auth" / "flask-secret-key", root / "mlflow.db",
                 root / "mlflow-server.log"):
        assert path.stat().st_mode & 0o077 == 0, path
    assert ADMIN[1] not in (root / "auth" / "basic_auth.ini").read_text()
    assert ADMIN[1] not in (root / "mlflow-server.log").read_text()


def _start(root: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    """``python -m bankseg.models.server`` with a SQLite backend; returns it and what it printed until ready."""
    env = {k: v for k, v in os.environ.items() if k != team.ADMIN_PASSWORD_ENV}
    child = subprocess.Popen([sys.executable, "-m", "bankseg.models.server", "--backend", "sqlite", "--root",
                              str(root), "--port", str(port)], stdout=subprocess.PIPE, text=True, env=env)
    lines = []
    while not lines or not lines[-1].startswith("Ctrl-C"):
        line = child.stdout.readline()
        assert line, f"the server exited with {child.wait()}: {lines}"
        lines.append(line.strip())
    return child, lines


def test_sigterm_stops_every_process_it_started_and_a_generated_password_is_printed_once(tmp_path):
    port = team.free_port()
    child, lines = _start(tmp_path, port)
    descendants = psutil.Process(child.pid).children(recursive=True)
    assert any("mlflow" in " ".join(p.cmdline()) for p in descendants)
    password_file = tmp_path / "auth" / "admin-password"
    password = password_file.read_text().strip()
    assert password_file.stat().st_mode & 0o777 == 0o600
    assert sum(password in line for line in lines) == 1  # printed once, at the first start
    assert call(f"http://127.0.0.1:{port}", "GET", "/api/2.0/mlflow/experiments/search?max_results=1",
                ("admin", password)) == 200

    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) == 0
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert alive == [], [p.cmdline() for p in alive]

    again, lines = _start(tmp_path, port)  # a restart reuses the password and never prints it again
    try:
        assert not any(password in line for line in lines)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)

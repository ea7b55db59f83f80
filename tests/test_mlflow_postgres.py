"""A team MLflow server: PostgreSQL backend, proxied artifacts, and the jobs run against it by tracking URI.

Starts Debian's PostgreSQL (a private cluster on a loopback port; `.ci/run` installs the package) and
`mlflow server`, then runs train -> register -> promote -> load by alias through the server.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import mlflow
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from bankseg.cli import CONFIG_DIR
from bankseg.data.simulate import SimulatorParams, write_simulated_bank
from bankseg.models.registry import find_version, load_model
from bankseg.models.server import running_mlflow_server, running_postgres

pytestmark = pytest.mark.slow
ADMIN_PASSWORD = "admin-password-of-the-test"


@pytest.fixture(scope="module")
def team_server():
    root = Path(tempfile.mkdtemp(prefix="bankseg-team-"))
    os.chmod(root, 0o755)  # the postgres system user must reach its cluster folder
    with running_postgres(root / "postgres") as backend, \
            running_mlflow_server(backend, root / "artifacts", password=ADMIN_PASSWORD) as url:
        yield url, backend, root


def test_postgres_asks_every_connection_for_a_password(team_server):
    _, backend, root = team_server
    port = str(urlsplit(backend).port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for user in ("postgres", "mlflow"):
        refused = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", user, "-d", "mlflow", "-w", "-tAc",
                                  "SELECT 1"], env=env, capture_output=True, text=True)
        assert refused.returncode != 0 and "password" in refused.stderr, refused.stderr
    hba = (root / "postgres" / "pgdata" / "pg_hba.conf").read_text().splitlines()
    methods = {line.split()[-1] for line in hba if line.split() and not line.startswith("#")}
    assert methods == {"scram-sha-256"}
    # the server's own role may use its databases and is no superuser
    password = (root / "postgres" / "mlflow-password").read_text().strip()
    done = subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "mlflow", "-d", "mlflow", "-tAc",
                           "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"],
                          env={**env, "PGPASSWORD": password}, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "f"
    assert oct((root / "postgres" / "mlflow-password").stat().st_mode & 0o777) == "0o600"


def test_train_register_promote_and_score_through_a_postgres_backed_server(team_server, tmp_path):
    url, backend, root = team_server
    assert backend.startswith("postgresql")
    bank = tmp_path / "bank"
    write_simulated_bank(SimulatorParams(n_customers=1200, n_months=30, seed=3), bank, progress=False)
    common = [f"data.path={bank}", f"paths.root_dir={tmp_path}", "model.params.num_threads=1", "build_report=false"]
    os.environ["MLFLOW_TRACKING_URI"] = url  # the environment variable alone points every job at the server
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "admin", ADMIN_PASSWORD
    try:
        from bankseg.cli import export, promote, score, train

        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            train_cfg = compose(config_name="train", overrides=["model=churn", *common])
            promote_cfg = compose(config_name="promote", overrides=["model=churn", *common])
            others = [compose(config_name="train", overrides=[f"model={m}", *common]) for m in ("conversion", "upgrade")]
            personas_cfg = compose(config_name="train", overrides=[
                "model=personas", f"data.path={bank}", f"paths.root_dir={tmp_path}", "build_report=false",
                "model.k_range=[4,5]", "model.n_bootstrap=0"])
            export_cfg = compose(config_name="export", overrides=[f"data.path={bank}", f"paths.root_dir={tmp_path}"])
            score_cfg = compose(config_name="score", overrides=[
                f"data.path={bank}", f"paths.root_dir={tmp_path}", "as_of=latest", f"out_dir={tmp_path}/scores"])
        assert train_cfg.mlflow.tracking_uri == url
        train.main(train_cfg)
        train.main(train_cfg)
        promote.main(promote_cfg)

        assert str(find_version("bankseg-churn", "challenger").version) == "2"
        champion = find_version("bankseg-churn", "champion")
        assert champion is not None
        run = mlflow.MlflowClient().search_runs(
            [mlflow.get_experiment_by_name("bankseg").experiment_id], "tags.`bankseg.job` = 'promote'"
        )[0]
        assert "promotion/challenger_oot_auc" in run.data.metrics
        model = load_model("bankseg-churn", "champion")
        assert "bal_aum_adb_3m" in model.metadata.get_input_schema().input_names()
        # the artifacts went through the server into its own folder, not into a local mlruns/
        assert any((root / "artifacts").rglob("MLmodel"))
        assert not (tmp_path / "mlruns").exists()

        # the rest of the flow through the same server: the segmenter from the champions, then batch scoring
        for cfg in (personas_cfg, *others):
            train.main(cfg)
        export.main(export_cfg)
        score.main(score_cfg)
        assert find_version("bankseg-segmenter", "champion") is not None
        scored = pd.concat(pd.read_parquet(p) for p in (tmp_path / "scores").rglob("segments/*.parquet"))
        customers = pd.read_parquet(bank / "customers")
        assert scored["customer_id"].is_unique and len(scored) > 0.8 * len(customers)
    finally:
        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            os.environ.pop(var, None)
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri("")

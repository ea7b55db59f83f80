"""Start a team MLflow server on this machine: ``mlflow server`` with a SQLite or PostgreSQL backend.

The real components, started as child processes on a loopback port and always stopped by the context managers:
- PostgreSQL (Debian's ``postgresql`` package): a private cluster in a folder of ours (``initdb``, ``pg_ctl``),
  run as the ``postgres`` system user when we are root (PostgreSQL refuses to run as root);
- ``mlflow server`` from this environment, proxying artifacts into a folder (``--serve-artifacts``).

Run one in the foreground for the team (Ctrl-C stops both)::

    python -m bankseg.models.server --backend postgres --root /srv/bankseg-mlflow --port 5000

then point every job at it: ``MLFLOW_TRACKING_URI=http://127.0.0.1:5000 bankseg-train model=churn``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

STARTUP_TIMEOUT_S = 180  # about 7 s on a quiet machine; over a minute seen on 2 busy cores


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, what: str, process: subprocess.Popen | None, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s; log {log}")
        time.sleep(0.5)


def postgres_bin() -> Path:
    """The folder of Debian's PostgreSQL server programs (initdb, pg_ctl, postgres)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise FileNotFoundError("PostgreSQL server not installed: apt-get install postgresql (.ci/run does this)")
    return Path(found[-1]).parent


def _as_postgres_user(command: list[str]) -> list[str]:
    """Run as the postgres system user when we are root (the server refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextlib.contextmanager
def running_postgres(root: Path, port: int | None = None, database: str = "mlflow") -> Iterator[str]:
    """A private PostgreSQL cluster under ``root`` on 127.0.0.1; yields its SQLAlchemy URI for ``database``."""
    root = Path(root)
    data, sockets, log = root / "pgdata", root / "pgsock", root / "postgres.log"
    port = port or free_port()
    bin_dir = postgres_bin()
    for folder in (root, sockets):
        folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        reachable = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(root)], check=False)
        if reachable.returncode != 0:
            raise PermissionError(f"{root} is not reachable by the postgres user: choose a folder whose parents "
                                  "others may enter (e.g. one made by tempfile.mkdtemp and chmod 755)")
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
        log.touch()
        shutil.chown(log, "postgres")
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            _as_postgres_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                               "-E", "UTF8", "--no-instructions"]),
            check=True, capture_output=True,
        )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1"
    subprocess.run(
        _as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
        check=True, capture_output=True,
    )
    try:
        exists = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-tAc",
             f"SELECT 1 FROM pg_database WHERE datname = '{database}'"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
                           check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        subprocess.run(
            _as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, artifacts: Path, port: int | None = None) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with ``backend_uri`` and proxied artifacts; yields its URL."""
    artifacts = Path(artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = artifacts.parent / "mlflow-server.log"
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend_uri,
        "--serve-artifacts", "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with log.open("wb") as out:
        # its own process group, so stopping it also stops the web workers it spawns
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: _healthy(url), "mlflow server", server, log, STARTUP_TIMEOUT_S)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--root", type=Path, required=True, help="folder for the database and the artifacts")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.backend == "postgres":
            backend = stack.enter_context(running_postgres(args.root / "postgres"))
        else:
            backend = f"sqlite:///{args.root.resolve() / 'mlflow.db'}"
        url = stack.enter_context(running_mlflow_server(backend, args.root / "artifacts", args.port))
        print(f"MLflow server at {url} (backend {args.backend}); export MLFLOW_TRACKING_URI={url}. Ctrl-C stops it.")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()

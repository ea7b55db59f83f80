"""Start a team MLflow server on this machine: ``mlflow server`` with a SQLite or PostgreSQL backend, that
lets in only the team's users.

The real components, started as child processes on a loopback port and always stopped by the context managers:
- PostgreSQL (Debian's ``postgresql`` package): a private cluster in a folder of ours (``initdb``, ``pg_ctl``),
  run as the ``postgres`` system user when we are root (PostgreSQL refuses to run as root); every connection
  needs a password (scram-sha-256), the server's own role is no superuser;
- ``mlflow server --app-name basic-auth`` from this environment (MLflow's basic-auth app, users and roles in
  the same cluster), proxying artifacts into a private folder (``--serve-artifacts``).

Run one in the foreground for the team (Ctrl-C or SIGTERM stops both)::

    python -m bankseg.models.server --backend postgres --root /srv/bankseg-mlflow --port 5000

The admin's password comes from ``BANKSEG_MLFLOW_ADMIN_PASSWORD``, or is generated on the first start, printed
once and kept in ``<root>/auth/admin-password`` (0600). Team members get a ``reader`` or ``editor`` role
(:func:`add_user`, README "Team MLflow server"). Every job then sends its user's credentials::

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 MLFLOW_TRACKING_USERNAME=ana MLFLOW_TRACKING_PASSWORD=... \
        bankseg-train model=churn
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

STARTUP_TIMEOUT_S = 180  # about 7 s on a quiet machine; over a minute seen on 2 busy cores
ADMIN_USER = "admin"
#: The admin's password for a new user store; unset, one is generated, printed once and kept in a 0600 file.
ADMIN_PASSWORD_ENV = "BANKSEG_MLFLOW_ADMIN_PASSWORD"
MIN_PASSWORD_LENGTH = 12
#: The team's roles: (resource type, permission) granted on every resource of the type ("*").
#: ``reader`` adds nothing to the server's default_permission READ: it sees every experiment, run and model.
ROLES: dict[str, tuple[tuple[str, str], ...]] = {
    "reader": (),
    "editor": (("workspace", "USE"), ("experiment", "EDIT"), ("registered_model", "MANAGE")),
}
ROLE_DESCRIPTIONS = {
    "reader": "reads experiments, runs, artifacts and registered models; changes nothing",
    "editor": "logs runs and artifacts, registers models, moves aliases, deletes model versions and models",
}


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


def _secret(path: Path) -> str:
    """The secret kept in ``path`` (0600), generated and written on first use; never logged."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    write_private(path, value + "\n")
    return value


def write_private(path: Path, text: str, owner: str | None = None) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (0600, also when the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
    if owner is not None:
        shutil.chown(path, owner)
    return path


def _check_no_trust(data: Path) -> None:
    """Refuse a cluster whose pg_hba.conf lets anyone in without a password (an older bankseg made those)."""
    hba = data / "pg_hba.conf"
    trusting = [line for line in hba.read_text().splitlines()
                if line.split() and not line.lstrip().startswith("#") and line.split()[-1] == "trust"]
    if trusting:
        raise PermissionError(f"{hba} trusts every local connection ({len(trusting)} 'trust' lines): set them to "
                              "scram-sha-256 (or start from an empty --root) before serving a team")


def _psql(port: int, password: str, sql: str, database: str = "postgres") -> str:
    """Run SQL as the cluster's superuser over TCP, the password in the environment (never on a command line)."""
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1",
         "-tA", "-f", "-"],
        input=sql, env={**os.environ, "PGPASSWORD": password}, check=True, capture_output=True, text=True,
    )
    return done.stdout.strip()


def _init_cluster(bin_dir: Path, data: Path, root: Path, superuser_password: str) -> None:
    """initdb with scram-sha-256 password authentication for every connection, local and TCP."""
    owner = "postgres" if os.geteuid() == 0 else None
    pwfile = write_private(root / ".initdb-password", superuser_password + "\n", owner)
    try:
        subprocess.run(
            _as_postgres_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
                               f"--pwfile={pwfile}", "-E", "UTF8", "--no-instructions"]),
            check=True, capture_output=True,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _ensure_database(port: int, superuser_password: str, database: str, user: str, password: str) -> None:
    """``user`` (a login role that is not a superuser) owning ``database``; its password set to ``password``."""
    quoted = password.replace("'", "''")
    exists = _psql(port, superuser_password, f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'")
    verb = "ALTER" if exists == "1" else "CREATE"
    _psql(port, superuser_password, f"{verb} ROLE {user} LOGIN NOSUPERUSER NOCREATEROLE PASSWORD '{quoted}'")
    for name in (database, f"{database}_auth"):
        if _psql(port, superuser_password, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
            _psql(port, superuser_password, f"CREATE DATABASE {name} OWNER {user}")


@contextlib.contextmanager
def running_postgres(root: Path, port: int | None = None, database: str = "mlflow") -> Iterator[str]:
    """A private PostgreSQL cluster under ``root`` on 127.0.0.1; yields the SQLAlchemy URI of ``database``.

    Every connection needs a password (scram-sha-256, local and TCP; a cluster that trusts is refused). The
    superuser's password and that of the ``mlflow`` role (owner of ``database`` and ``<database>_auth``, the
    basic-auth app's user store, and no superuser) are generated on first start and kept in 0600 files under
    ``root``. The URI carries the ``mlflow`` role's password: pass it in the environment, not on a command line.
    """
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
    superuser_password = _secret(root / "superuser-password")
    mlflow_password = _secret(root / "mlflow-password")
    if not (data / "PG_VERSION").exists():
        _init_cluster(bin_dir, data, root, superuser_password)
    _check_no_trust(data)
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c password_encryption=scram-sha-256"
    subprocess.run(
        _as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
        check=True, capture_output=True,
    )
    try:
        _ensure_database(port, superuser_password, database, "mlflow", mlflow_password)
        yield f"postgresql+psycopg2://mlflow:{quote(mlflow_password, safe='')}@127.0.0.1:{port}/{database}"
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


def auth_database_uri(backend_uri: str, folder: Path) -> str:
    """Where the basic-auth app keeps users and permissions: ``<database>_auth`` beside a PostgreSQL backend
    (made by :func:`running_postgres`), else a SQLite file in ``folder``."""
    parsed = urlsplit(backend_uri)
    if parsed.scheme.startswith("postgresql"):
        return urlunsplit(parsed._replace(path=parsed.path.rstrip("/") + "_auth"))
    return f"sqlite:///{folder.resolve() / 'basic_auth.db'}"


def _private_folder(folder: Path) -> Path:
    """``folder`` (and missing parents) made and set to 0700: it holds passwords or pickled models."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    return folder


def admin_password(folder: Path) -> tuple[str, bool]:
    """The admin's password and whether it was generated just now.

    From :data:`ADMIN_PASSWORD_ENV` when set, else the one kept in ``folder/admin-password`` (0600), else a new
    random one written there: the caller prints a generated password once, and nothing logs it again.
    """
    given = os.environ.get(ADMIN_PASSWORD_ENV)
    if given:
        if len(given) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"{ADMIN_PASSWORD_ENV} must have at least {MIN_PASSWORD_LENGTH} characters")
        return given, False
    _private_folder(folder)
    path = folder / "admin-password"
    generated = not path.exists()
    return _secret(path), generated


def _auth_settings(backend_uri: str, folder: Path, password: str) -> dict[str, str]:
    """The basic-auth app's config file (0600) and the environment that points the server at it."""
    _private_folder(folder)
    config = write_private(folder / "basic_auth.ini", "\n".join([
        "[mlflow]",
        "default_permission = READ",  # a user without a role reads; the editor role may change things
        f"database_uri = {auth_database_uri(backend_uri, folder)}".replace("%", "%%"),
        f"admin_username = {ADMIN_USER}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        # a password check (PBKDF2) took about 6 s on the shared 2-core machine: remember a good one for a minute
        # (one worker, so a password changed through the API takes effect at once)
        "auth_cache_ttl_seconds = 60",
        "",
    ]))
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,  # used once, to create the admin in an empty user store
        "MLFLOW_FLASK_SERVER_SECRET_KEY": _secret(folder / "flask-secret-key"),  # CSRF; same across restarts
    }


def _api(url: str, method: str, path: str, credentials: tuple[str, str], payload: dict | None = None) -> dict:
    """One JSON call to the server's REST API with basic-auth credentials."""
    token = base64.b64encode(":".join(credentials).encode()).decode()
    request = urllib.request.Request(
        f"{url}{path}", method=method, data=None if payload is None else json.dumps(payload).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else {}


def ensure_roles(url: str, password: str) -> dict[str, int]:
    """The team's roles in the default workspace (created once); returns their ids by name (see :data:`ROLES`)."""
    admin = (ADMIN_USER, password)
    found = {r["name"]: int(r["id"]) for r in _api(url, "GET", "/api/3.0/mlflow/roles/list?workspace=default",
                                                     admin).get("roles", [])}
    for name, grants in ROLES.items():
        if name in found:
            continue
        role = _api(url, "POST", "/api/3.0/mlflow/roles/create", admin,
                    {"workspace": "default", "name": name, "description": ROLE_DESCRIPTIONS[name]})["role"]
        found[name] = int(role["id"])
        for resource_type, permission in grants:
            _api(url, "POST", "/api/3.0/mlflow/roles/permissions/add", admin,
                 {"role_id": found[name], "resource_type": resource_type, "resource_pattern": "*",
                  "permission": permission})
    return {name: found[name] for name in ROLES}


def add_user(url: str, admin: str, username: str, password: str, role: str = "reader") -> None:
    """Create a team member with ``role`` (``reader`` or ``editor``, :data:`ROLES`); ``admin`` is the admin's password."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}, got {role!r}")
    roles = ensure_roles(url, admin)
    _api(url, "POST", "/api/2.0/mlflow/users/create", (ADMIN_USER, admin), {"username": username, "password": password})
    if ROLES[role]:
        _api(url, "POST", "/api/3.0/mlflow/roles/assign", (ADMIN_USER, admin),
             {"username": username, "role_id": roles[role]})


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (the server and its web workers), SIGKILL after 20 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, artifacts: Path, port: int | None = None, auth: bool = True,
                          password: str | None = None) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1 with ``backend_uri`` and proxied artifacts; yields its URL.

    ``auth`` (the default) starts MLflow's basic-auth app: every request needs a user's password, the admin's
    is ``password`` (default :func:`admin_password`), users and roles live in :func:`auth_database_uri`, and
    its config and secrets in ``<artifacts>/../auth`` (0700). The backend URI goes to the server in its
    environment, never on its command line (``ps`` shows command lines to every local user). The artifacts
    folder is private (0700): scoring unpickles the models in it.
    """
    artifacts = _private_folder(Path(artifacts))
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = artifacts.parent / "mlflow-server.log"
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--serve-artifacts", "--artifacts-destination", str(artifacts),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_BACKEND_STORE_URI"] = backend_uri
    if auth:
        password = password or admin_password(artifacts.parent / "auth")[0]
        command += ["--app-name", "basic-auth"]
        env.update(_auth_settings(backend_uri, artifacts.parent / "auth", password))
    with log.open("wb") as out:
        os.chmod(log, 0o600)
        # its own process group, so stopping it also stops the web workers it spawns
        # umask 077: the store, the user store and every artifact it writes are private to this user
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                  umask=0o077)
    try:
        _wait(lambda: _healthy(url), "mlflow server", server, log, STARTUP_TIMEOUT_S)
        if auth:
            ensure_roles(url, password)
        yield url
    finally:
        _stop_group(server)


def _interrupt(signum, _frame) -> None:
    """SIGTERM as Ctrl-C: unwinds the context managers, which stop what they started; a second one is ignored."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--root", type=Path, required=True, help="folder for the database and the artifacts")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--no-auth", action="store_true", help="no basic-auth app (only for a one-person machine)")
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # from here on, even during start-up
    password, generated = (None, False) if args.no_auth else admin_password(args.root / "auth")
    try:
        with contextlib.ExitStack() as stack:
            if args.backend == "postgres":
                backend = stack.enter_context(running_postgres(args.root / "postgres"))
            else:
                backend = f"sqlite:///{args.root.resolve() / 'mlflow.db'}"
            url = stack.enter_context(running_mlflow_server(backend, args.root / "artifacts", args.port,
                                                            auth=not args.no_auth, password=password))
            print(f"MLflow server at {url} (backend {args.backend}); export MLFLOW_TRACKING_URI={url}", flush=True)
            if generated:  # shown this once; kept only in the 0600 file
                print(f"admin password (user {ADMIN_USER}), generated now and kept in "
                      f"{args.root / 'auth' / 'admin-password'}: {password}", flush=True)
            print("Ctrl-C or SIGTERM stops it (and PostgreSQL).", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()

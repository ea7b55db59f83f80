"""One run at a time per output folder, and what a killed run left behind cleaned up by the next one.

:func:`out_dir_lock` holds an exclusive ``flock`` on ``<parent>/.<out_dir name>.lock`` for as long as a job
writes ``out_dir``. The lock file says who holds it (job, pid, host, start time, MLflow run id). A second run
into the same folder refuses with :class:`OutDirBusyError` naming the first. The kernel drops a ``flock`` when its
process dies (even by SIGKILL), so a lock file that still names a holder but is not locked was left by a dead
run: it is taken over with a warning. On every start the temporary files of killed runs (:func:`stale_leftovers`)
are removed: no live run can own them while we hold the lock.
The lock file sits beside the folder (not inside it) because some jobs replace the whole folder at the end.

The lock file is private to the user (0600): it names a host and a pid, nothing about customers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"


class OutDirBusyError(RuntimeError):
    """Another live run holds the output folder's lock."""


@dataclass
class LockHolder:
    """Who holds (or last held) an output folder's lock."""

    job: str
    pid: int
    host: str
    started: str
    run_id: str | None = None

    def describe(self) -> str:
        run = f", MLflow run {self.run_id}" if self.run_id else ""
        return f"bankseg-{self.job} pid {self.pid} on host {self.host}, started {self.started}{run}"


@dataclass
class OutDirLock:
    """A held lock: the holder written in the file, and the dead run it took over (None when there was none)."""

    out_dir: Path
    path: Path
    holder: LockHolder
    stale: LockHolder | None = None
    removed: list[Path] = field(default_factory=list)
    _handle: object = None

    def set_run_id(self, run_id: str) -> None:
        """Record the MLflow run writing the folder (the next run marks it FAILED if this one dies)."""
        self.holder.run_id = run_id
        _write_holder(self._handle, self.holder)


def lock_path(out_dir: Path | str) -> Path:
    """``<parent>/.<name>.lock``: the lock file of ``out_dir``."""
    out_dir = Path(out_dir).resolve()
    return out_dir.parent / f".{out_dir.name}.lock"


def stale_leftovers(out_dir: Path | str) -> list[Path]:
    """What killed runs into ``out_dir`` leave: ``out_dir/.tmp-*`` folders, ``out_dir/.*.tmp`` files (an
    interrupted atomic write) and the ``.<name>.tmp-*`` / ``.<name>.old-*`` siblings of a replaced folder."""
    out_dir = Path(out_dir).resolve()
    inside = [*sorted(out_dir.glob(f"{TMP_PREFIX}*")), *sorted(out_dir.glob(".*.tmp"))] if out_dir.is_dir() else []
    beside = [p for kind in ("tmp", "old") for p in sorted(out_dir.parent.glob(f".{out_dir.name}.{kind}-*"))]
    return [*inside, *beside]


def _read_holder(handle) -> LockHolder | None:
    handle.seek(0)
    text = handle.read().strip()
    if not text:
        return None
    try:
        return LockHolder(**json.loads(text))
    except (ValueError, TypeError):
        return LockHolder(job="unknown", pid=-1, host="unknown", started="unknown (unreadable lock file)")


def _write_holder(handle, holder: LockHolder) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(asdict(holder)))
    handle.flush()
    os.fsync(handle.fileno())


@contextlib.contextmanager
def out_dir_lock(out_dir: Path | str, job: str) -> Iterator[OutDirLock]:
    """Hold ``out_dir``'s lock while the body runs; :class:`OutDirBusyError` naming the holder if it is taken.

    On entry the temporary folders of dead runs are removed (a warning lists them) and a dead holder's lock is
    taken over with a warning; ``lock.stale`` is that holder (its MLflow run id, if it had one). The lock file
    is emptied on exit, so the next run finds no holder.
    """
    out_dir = Path(out_dir).resolve()
    path = lock_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = _read_holder(handle)
            who = holder.describe() if holder else "another run (it has not written its name yet)"
            raise OutDirBusyError(
                f"out_dir {out_dir} is in use by {who}: wait for it to finish or choose another out_dir "
                f"(lock file {path})"
            ) from None
        stale = _read_holder(handle)
        if stale is not None:
            log.warning("taking over the lock of %s: that run died without releasing it (lock file %s)",
                        stale.describe(), path)
        removed = _remove_stale_folders(out_dir)
        holder = LockHolder(job=job, pid=os.getpid(), host=socket.gethostname(),
                            started=datetime.now(UTC).isoformat(timespec="seconds"))
        _write_holder(handle, holder)
        lock = OutDirLock(out_dir, path, holder, stale, removed, handle)
        try:
            yield lock
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
    finally:
        handle.close()  # closing the descriptor releases the flock


def _remove_stale_folders(out_dir: Path) -> list[Path]:
    found = stale_leftovers(out_dir)
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if found:
        log.warning("removed %d temporary file(s) or folder(s) left by a killed run: %s", len(found),
                    ", ".join(str(p) for p in found))
    return found

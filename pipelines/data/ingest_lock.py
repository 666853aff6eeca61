"""One ingest at a time per data directory, and recovery from one that was killed.

Two ingests on one data directory (a retried Airflow task beside a hand-run CLI) would both read
the manifests, both decide a batch is new and both curate it. So every entry point that writes
batches (``ingest``, the DAG's ``land`` and ``validate``) holds an exclusive lock on
``<data dir>/.ingest.lock`` from before it reads what was ingested until its last write: the
second one logs who holds it and waits, then reads the first one's manifests and finds its
batches already there (``duplicate``). The result is the same as running one after the other.

The lock is ``fcntl.flock`` on an open file, which the kernel drops when its process dies (even
by SIGKILL): a killed ingest never leaves a stale lock. Whoever takes the lock next first removes
what a killed run left half-done (``recover``): temporary files of interrupted atomic writes, and
curated or rejected files of a batch that has no ``accepted`` manifest (the manifest is written
last, so such files belong to a run that died between the two).

On an object store (``s3://``) there is no ``flock``: the lock file is then local, in the
system's temporary folder and keyed by the data directory's URI, so ingests on one host are
serialised, but two hosts ingesting into one bucket at the same moment are not (run the DAG with
one ingest at a time: ``max_active_runs=1``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts.settings import Settings
from contracts.storage import DataPath, is_remote
from pipelines.data.zones import DataDir, private_dir

log = logging.getLogger(__name__)

LOCK_FILE = ".ingest.lock"


def lock_path(data: DataDir) -> Path:
    """The lock file: in the data directory, or for an object store a local one per URI."""
    if is_remote(data.root):
        digest = hashlib.sha256(str(data.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"shoprec-ingest-{digest}.lock"
    return private_dir(Path(data.root)) / LOCK_FILE


@contextmanager
def ingest_lock(data: DataDir, *, what: str = "ingest") -> Iterator[None]:
    """Hold the data directory's ingest lock; wait (saying for whom) while another run holds it.

    Then recover what a killed run left behind, so the caller starts from a consistent state.
    """
    path = lock_path(data)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            message = (f"{what}: another ingest holds {path} ({holder}); waiting for it to "
                       "finish, then its batches are skipped as already ingested")
            log.warning(message)
            started = time.monotonic()
            fcntl.flock(fd, fcntl.LOCK_EX)
            log.warning("%s: lock on %s acquired after %.1f s", what, path,
                        time.monotonic() - started)
        os.ftruncate(fd, 0)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.pwrite(fd, f"{what}, pid {os.getpid()} on {socket.gethostname()} since {now}"
                  .encode(), 0)
        recover(data, data.read_manifests())
        yield
    finally:
        os.close(fd)  # closing drops the lock, as a process's death does


def data_dir_lock(settings: Settings, data_dir: DataPath | None = None, *,
                  what: str = "ingest"):
    """``ingest_lock`` on ``data_dir`` (default: the settings' data directory), created first."""
    return ingest_lock(DataDir(data_dir or settings.data_dir).create(), what=what)


def recover(data: DataDir, manifests: Iterable[dict[str, Any]]) -> list[DataPath]:
    """Remove what a killed ingest left half-done; returns what was removed.

    Only safe under ``ingest_lock``: unrecorded files may otherwise be another run's work in
    progress. Landed files are kept (a re-run lands them again atomically, and the DAG's
    ``validate`` picks up landed folders without a manifest).
    """
    accepted = {m["batch"] for m in manifests if m["status"] == "accepted"}
    removed: list[DataPath] = []
    for zone in (data.curated, data.rejected, data.manifests, data.landing, data.quarantine,
                 data.reports):
        if not zone.is_dir():
            continue
        # temporaries of ``write_atomic`` (files) and of landing's copies (folders)
        removed += [p for p in zone.rglob(".*") if not any(
            parent.name.startswith(".") for parent in p.relative_to(zone).parents
            if parent.name)]
    for pattern in ("curated/*/batch_date=*/*.parquet", "rejected/batch_date=*/*.csv"):
        removed += [p for p in data.root.glob(pattern) if p.stem not in accepted]
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if removed:
        log.warning("recovered from an interrupted ingest: removed %d unrecorded files (e.g. %s)",
                    len(removed), removed[0])
    return removed

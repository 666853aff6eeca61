"""The data directory and its zones.

``landing/`` holds batches as received, ``quarantine/`` batches that failed a critical check
(untouched, with their validation result and a summary), ``curated/`` validated Parquet partitioned
by batch date, ``rejected/`` the rows each accepted batch set aside with their reason, and
``batches/`` one manifest per batch keyed by content hash, which makes re-landing idempotent.

Landing and quarantine hold raw customer ids, so every folder the platform creates under the data
directory (the directory itself too, when it creates it) is private to its owner: mode 0700. On an
object store (``contracts.storage``) there are no folders or modes: access is the bucket's policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contracts.storage import DataPath, is_remote, write_atomic


@dataclass(frozen=True)
class DataDir:
    root: DataPath  # a local folder or an object-store location (``contracts.storage``)

    @property
    def landing(self) -> DataPath:
        return self.root / "landing"

    @property
    def quarantine(self) -> DataPath:
        return self.root / "quarantine"

    @property
    def curated(self) -> DataPath:
        return self.root / "curated"

    @property
    def rejected(self) -> DataPath:
        return self.root / "rejected"

    @property
    def manifests(self) -> DataPath:
        return self.root / "batches"

    @property
    def features(self) -> DataPath:
        """Feature sets built for training, one folder per data version and history length."""
        return self.root / "features"

    @property
    def reference(self) -> DataPath:
        """Reference data that is not a batch (e.g. a synthetic shop's planted preferences)."""
        return self.root / "reference"

    @property
    def reports(self) -> DataPath:
        return self.root / "reports"

    @property
    def data_docs(self) -> DataPath:
        return self.reports / "data_docs"

    def create(self) -> DataDir:
        if is_remote(self.root):  # an object store has no folders to create
            return self
        private_dir(self.root)
        for zone in (self.landing, self.quarantine, self.curated, self.rejected, self.manifests,
                     self.reports, self.reference, self.features):
            private_dir(zone)
            zone.chmod(0o700)  # also a zone an older version created with the default umask
        return self

    def manifest_path(self, content_hash: str) -> DataPath:
        return self.manifests / f"{content_hash}.json"

    def read_manifests(self) -> list[dict[str, Any]]:
        """All batch manifests, oldest ingestion first."""
        if not self.manifests.is_dir():
            return []
        found = [json.loads(p.read_text()) for p in self.manifests.glob("*.json")]
        return sorted(found, key=lambda m: (m["ingested_at"], m["batch"]))

    def curated_partition(self, table: str, batch_date: str) -> DataPath:
        return self.curated / table / f"batch_date={batch_date}"


def private_dir(path: DataPath) -> DataPath:
    """``mkdir -p`` whose every newly created folder is 0700, whatever the umask (nothing to do
    on an object store, where folders exist only as key prefixes)."""
    if is_remote(path):
        return path
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
    return path


def write_json_atomic(path: DataPath, payload: Any) -> None:
    """Write JSON so readers never see half a file (see ``contracts.storage.write_atomic``)."""
    private_dir(path.parent)
    text = json.dumps(payload, indent=2, default=str, sort_keys=True)
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))

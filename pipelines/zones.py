"""The data directory and its zones.

``landing/`` holds batches as received, ``quarantine/`` batches that failed a critical check
(untouched, with their validation result and a summary), ``curated/`` validated Parquet partitioned
by batch date, ``rejected/`` the rows each accepted batch set aside with their reason, and
``batches/`` one manifest per batch keyed by content hash, which makes re-landing idempotent.

Landing and quarantine hold raw customer ids, so every folder the platform creates under the data
directory (the directory itself too, when it creates it) is private to its owner: mode 0700.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def curated(self) -> Path:
        return self.root / "curated"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def manifests(self) -> Path:
        return self.root / "batches"

    @property
    def features(self) -> Path:
        """Feature sets built for training, one folder per data version and history length."""
        return self.root / "features"

    @property
    def reference(self) -> Path:
        """Reference data that is not a batch (e.g. a synthetic shop's planted preferences)."""
        return self.root / "reference"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def data_docs(self) -> Path:
        return self.reports / "data_docs"

    def create(self) -> DataDir:
        private_dir(self.root)
        for zone in (self.landing, self.quarantine, self.curated, self.rejected, self.manifests,
                     self.reports, self.reference, self.features):
            private_dir(zone)
            zone.chmod(0o700)  # also a zone an older version created with the default umask
        return self

    def manifest_path(self, content_hash: str) -> Path:
        return self.manifests / f"{content_hash}.json"

    def read_manifests(self) -> list[dict[str, Any]]:
        """All batch manifests, oldest ingestion first."""
        if not self.manifests.is_dir():
            return []
        found = [json.loads(p.read_text()) for p in self.manifests.glob("*.json")]
        return sorted(found, key=lambda m: (m["ingested_at"], m["batch"]))

    def curated_partition(self, table: str, batch_date: str) -> Path:
        return self.curated / table / f"batch_date={batch_date}"


def private_dir(path: Path) -> Path:
    """``mkdir -p`` whose every newly created folder is 0700, whatever the umask."""
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
    return path


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON via a temporary file and rename, so readers never see half a file."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, default=str, sort_keys=True)
    os.replace(tmp, path)

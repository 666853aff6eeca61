"""Landing: screen what was handed in, copy each batch into ``landing/`` as received.

Symbolic links and paths outside the folders given are refused (never followed), and a batch
over ``Settings.max_batch_bytes`` is refused unread; a refused batch leaves only a marker, so the
validate step still reports it (``pipelines.data.ingestor``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from contracts.pseudonyms import Pseudonymiser
from contracts.settings import Settings
from contracts.storage import DataPath, is_remote, put
from pipelines.data.ingest_lock import ingest_lock
from pipelines.data.sources import get_source
from pipelines.data.sources.base import BatchInput, Source
from pipelines.data.zones import DataDir, private_dir, write_json_atomic

# What ``land`` leaves in a landing folder for a refused batch instead of its (unread) files.
REFUSED_MARKER = "refused.json"


def write_reference(
    data: DataDir, source: Source, paths: Sequence[Path], pseudonymiser: Pseudonymiser
) -> None:
    """Store the reference data that comes with the batches (see ``Source.reference``)."""
    for name, payload in source.reference(paths, pseudonymiser).items():
        write_json_atomic(data.reference / f"{name}.json", payload)


def land_batch(data: DataDir, batch: BatchInput) -> BatchInput:
    """Copy the batch into ``landing/`` as received, unless it already lies there.

    A refused batch is not copied (its files are never read): its landing folder holds only a
    ``refused.json`` marker, so the validate step still reports it. On an object store the files
    are uploaded (unless there already: a batch id names one content) and the batch is still read
    from its local files.
    """
    target = data.landing / batch.source / batch.batch_id
    if batch.refused is not None:
        write_json_atomic(target / REFUSED_MARKER, {
            "source": batch.source, "name": batch.name, "files": [p.name for p in batch.files],
            "reason": batch.refused, "content_hash": batch.content_hash,
            "batch_date": batch.batch_date.isoformat() if batch.batch_date else None,
        })
        return batch
    if is_remote(target):
        for path in batch.files:
            if not (target / path.name).exists():
                put(path, target / path.name)
        return batch
    if all(data.landing in f.resolve().parents for f in batch.files):
        return batch
    # Copied into a hidden sibling folder, then renamed: a killed copy never leaves a landing
    # folder with part of a batch (which the DAG's validate step would pick up as a batch).
    partial = private_dir(target.parent / f".{batch.batch_id}.landing")
    for path in batch.files:
        shutil.copy2(path, partial / path.name, follow_symlinks=False)
    if target.is_dir():  # landed before: same id, same content
        for path in batch.files:
            (partial / path.name).replace(target / path.name)
        shutil.rmtree(partial)
    else:
        partial.rename(target)
    files = [target / path.name for path in batch.files]
    landed = BatchInput(batch.source, batch.name, tuple(files), batch.batch_date, batch.window)
    landed.__dict__["content_hash"] = batch.content_hash
    return landed


def from_marker(source: Source, folder: Path) -> BatchInput:
    """The refused batch whose landing folder holds only its marker (see ``land_batch``)."""
    marker = json.loads((folder / REFUSED_MARKER).read_text(encoding="utf-8"))
    day = dt.date.fromisoformat(marker["batch_date"]) if marker.get("batch_date") else None
    batch = BatchInput(source.name, marker["name"], tuple(Path(n) for n in marker["files"]),
                       day, refused=marker["reason"])
    batch.__dict__["content_hash"] = marker["content_hash"]
    return batch


def screen(batches: Iterable[BatchInput], paths: Sequence[Path],
           settings: Settings) -> list[BatchInput]:
    """Refuse what must not be read: files whose real path lies outside the folders given (or,
    for a file given, outside its folder), and batches over ``settings.max_batch_bytes``.

    Symbolic links are already refused by the source's ``discover``; a refused batch is
    quarantined with its reason and never read or copied.
    """
    roots = [(p if p.is_dir() else p.parent).resolve() for p in paths]
    screened = []
    for batch in batches:
        if batch.refused is None:
            outside = [f for f in batch.files if not any(
                r == f.resolve() or r in f.resolve().parents for r in roots)]
            if outside:
                batch = dataclasses.replace(
                    batch, refused=f"{outside[0].name}: lies outside the folder given "
                    "(not followed)")
        if batch.refused is None and batch.size > settings.max_batch_bytes:
            batch = dataclasses.replace(
                batch, refused=f"too large: {batch.size} bytes, over max_batch_bytes "
                f"({settings.max_batch_bytes}); split the export or raise the limit")
        screened.append(batch)
    return screened


def land(settings: Settings, paths: Sequence[Path] | None = None) -> list[DataPath]:
    """Land the batches under ``paths`` (default: the inbox) that have no manifest yet.

    Returns the landing folders still waiting for validation, including any landed by an earlier
    run that stopped before validating, so a retried or re-run pipeline picks up where it left
    off and never lands or validates a batch twice. Needs no Great Expectations context.
    """
    data = DataDir(settings.data_dir).create()
    adapter = get_source(settings.source)
    paths = list(paths) if paths is not None else [settings.inbox]
    paths = [p for p in paths if p.exists()]
    with ingest_lock(data, what="land"):  # what is recorded cannot change while we read it
        return _land(data, adapter, paths, settings)


def _land(data: DataDir, adapter: Source, paths: list[Path], settings: Settings) -> list[DataPath]:
    recorded = {m["batch"] for m in data.read_manifests()}
    if paths:
        write_reference(data, adapter, paths,
                        Pseudonymiser(settings.require_pseudonym_key()))
        for batch in screen(adapter.discover(paths), paths, settings):
            if batch.batch_id not in recorded:
                land_batch(data, batch)
    folder = data.landing / adapter.name
    pending = folder.iterdir() if folder.is_dir() else []
    return sorted(p for p in pending if p.is_dir() and p.name not in recorded)

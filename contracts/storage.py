"""Where the data directory lives: a local folder (the default) or an object-store URI.

``SHOPREC_DATA_DIR`` may be ``s3://bucket/prefix`` (any fsspec protocol whose package is
installed; s3fs is), so that workers on other hosts share the data zones without a common mount.
Paths in a remote data directory are ``upath.UPath`` objects, which keep pathlib's API (``/``,
``glob``, ``iterdir``, ``read_text``, ``open``) over fsspec; a local data directory stays a plain
``pathlib.Path``, so its behaviour is unchanged. The store's credentials and endpoint come from
its own environment (for S3: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``), never from the settings.

What needs real files (a source adapter parsing a batch, NumPy loading a feature set, Great
Expectations rendering Data Docs) works on a local copy: ``local_copy`` downloads a remote file
or folder, ``put`` copies a local one there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeAlias
from urllib.parse import urlparse
from urllib.request import url2pathname

from upath import UPath

DataPath: TypeAlias = Path | UPath


def location(value: str | os.PathLike[str] | UPath) -> DataPath:
    """A local path (``file://`` URIs included) as an absolute ``Path``; a URI of any other
    scheme (``s3://bucket/prefix``) as a ``UPath``. Unknown schemes fail in one line."""
    if is_remote(value):
        return value
    text = str(value)
    if text.startswith("file:"):
        return Path(url2pathname(urlparse(text).path))
    if "://" not in text:
        return Path(text).expanduser().resolve()
    try:
        return UPath(text.rstrip("/"))
    except (ValueError, ImportError) as err:
        raise ValueError(f"cannot open {text}: {err}") from None


def is_remote(path: object) -> bool:
    """Whether ``path`` lies on an object store (a ``UPath`` that is not a local ``Path``)."""
    return isinstance(path, UPath) and not isinstance(path, Path)


def arrow_source(path: DataPath) -> dict[str, Any]:
    """``path`` as pyarrow's readers take it: ``source`` and ``filesystem`` (None: local)."""
    if is_remote(path):
        return {"source": path.path, "filesystem": path.fs}
    return {"source": str(path), "filesystem": None}


def write_atomic(path: DataPath, write: Callable[[IO[bytes]], None]) -> DataPath:
    """Write ``path`` so readers never see half of it: locally through a temporary sibling and a
    rename; on an object store a single upload, which is all-or-nothing already."""
    if is_remote(path):
        with path.open("wb") as handle:
            write(handle)
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def files_under(folder: DataPath) -> list[str]:
    """Paths of every file under ``folder``, relative to it (POSIX separators), sorted."""
    if is_remote(folder):
        root = folder.path.rstrip("/") + "/"
        return sorted(f[len(root):] for f in folder.fs.find(folder.path) if f.startswith(root))
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@contextmanager
def local_copy(path: DataPath) -> Iterator[Path]:
    """``path`` itself when local; otherwise a temporary local copy of the file or folder, under
    the same name, removed on exit."""
    if not is_remote(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="shoprec-") as tmp:
        target = Path(tmp) / path.name
        if path.is_file():
            path.fs.get_file(path.path, str(target))
        else:
            for name in files_under(path):
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                path.fs.get_file(f"{path.path}/{name}", str(target / name))
        yield target


def put(local: Path, target: DataPath) -> None:
    """Copy the local file ``local`` to ``target``, or a local folder's files under ``target``
    (on an object store, an upload)."""
    if not is_remote(target):
        if local.is_file():
            shutil.copy2(local, target)
        else:
            shutil.copytree(local, target, dirs_exist_ok=True)
        return
    if local.is_file():
        target.fs.put_file(str(local), target.path)
        return
    for name in files_under(local):
        target.fs.put_file(str(local / name), f"{target.path}/{name}")

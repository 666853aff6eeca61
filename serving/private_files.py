"""Files the endpoint writes under the data directory: private to their owner, never through a
symbolic link planted in their place, and written whole (a short ``os.write`` is continued).

The feedback inbox appends to its hour files with these, the traffic log writes its Parquet
parts with them.
"""

from __future__ import annotations

import os
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)


def private_folder(path: Path) -> Path:
    """``mkdir -p`` with mode 0700 for what it creates."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes, *, new: bool, append: bool = False) -> None:
    """Write ``data`` in full to ``path`` (mode 0600), refusing a symlink there (``O_NOFOLLOW``).
    ``new``: the file must not exist yet (``FileExistsError`` otherwise); ``append``: one write
    on an ``O_APPEND`` descriptor, so concurrent appenders never interleave."""
    flags = _FLAGS | (os.O_EXCL if new else 0) | (os.O_APPEND if append else 0)
    fd = os.open(path, flags, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)

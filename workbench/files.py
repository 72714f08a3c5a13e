"""Writing a file so that a reader never sees half of it (torch-free, for every module)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data) -> None:
    """Write ``data`` (bytes-like) to ``path``: a temporary file beside it, synced, renamed over
    it; an interrupted write leaves the old file (or none) and no temporary one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

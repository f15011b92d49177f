"""Path helpers shared by the model-file searches (pose models, the headless pipeline)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def unique_paths(dirs: Iterable[Path]) -> list[Path]:
    """Drop repeated folders (compared case- and separator-normalised), keeping the first occurrence.

    Search lists are built from several sources (user folders, environment variables, legacy pack
    folders) that often name the same folder twice; an error listing "every searched path" should
    list each once, in search order.
    """
    unique: list[Path] = []
    seen: set[str] = set()
    for d in dirs:
        key = os.path.normcase(os.path.abspath(d))
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that the path only ever holds a complete file.

    The bytes go to ``<path>.part`` in the same folder, are flushed to disk, and the file is renamed
    over ``path`` (atomic on POSIX and Windows); an error or Ctrl-C removes the ``.part`` file.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out

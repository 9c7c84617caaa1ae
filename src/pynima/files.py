"""Writing files so that a crash never leaves half a file: write a temporary sibling, then rename it into place.

``os.replace`` within one folder is atomic on POSIX and Windows, so a reader sees the old file or the new one, never
a truncated one. Written here because the maintained option (``atomicwrites``) is archived, and the helper is a few
lines; every file pynima writes (JSON, CSV, labels, ONNX, plots) goes through it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "LOCK_FILE",
    "RUN_MARKER",
    "atomic_path",
    "folder_lock",
    "is_temporary",
    "read_csv",
    "read_json",
    "remove_stale_temporaries",
    "temporary_sibling",
    "write_bytes",
    "write_json",
    "write_text",
]


def temporary_sibling(path: str | Path) -> Path:
    """A fresh hidden name next to ``path`` that keeps its suffix (writers such as matplotlib read the format from
    it).
    """
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for a writer to fill; it is renamed onto ``path`` if the block ends
    normally and removed if it raises, so ``path`` is only ever absent, the old file or the complete new one.
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        with open(tmp, "rb") as f:  # on disk before the rename, so a power cut cannot leave an empty file
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # a failed write() names no file: name the one the user asked for (disk full, read-only)
        if e.filename is None or e.filename == str(tmp):
            e.filename = str(path)
        raise
    finally:
        with contextlib.suppress(OSError):  # a failed cleanup must not hide the error that stopped the writer
            tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    """``text`` as UTF-8 into ``path``, atomically (``write_bytes``)."""
    write_bytes(path, text.encode())


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None: JSON has no such numbers (Python's bare NaN is not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """``obj`` as JSON, written atomically; an undefined number (NaN, an infinity) is written as null."""
    write_text(path, json.dumps(_finite(obj), indent=indent, allow_nan=False))


def read_json(path: str | Path) -> Any:
    """A JSON file's content; a missing, unreadable or malformed file is one PynimaError line naming it."""
    from pynima.errors import PynimaError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PynimaError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PynimaError(f"{path}: not a readable JSON file ({e})") from None


LOCK_FILE = ".pynima.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a run, a benchmark) for the block, so two pynima processes never write
    into one folder at once; the OS releases it if the process dies, so a killed run never leaves it stuck.
    """
    from filelock import FileLock, Timeout

    from pynima.errors import PynimaError

    lock = FileLock(Path(folder) / LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise PynimaError(f"{folder}: another pynima process is using this folder") from None
    try:
        yield
    finally:
        lock.release()


RUN_MARKER = ".pynima-run"  # in every train run's folder: what --overwrite may replace is a pynima run's files
_TEMPORARY = re.compile(r"^\..*\.(\d+)-[0-9a-f]{8}\.tmp")


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is named as a pynima temporary sibling (``temporary_sibling``), whoever's it is."""
    return _TEMPORARY.match(Path(path).name) is not None


def remove_stale_temporaries(folder: str | Path) -> None:
    """Remove the temporary siblings (files or folders) that killed pynima processes left in ``folder``: those whose
    process no longer exists. Call it while holding the folder's lock.
    """
    import shutil

    for p in Path(folder).glob(".*.tmp*"):
        m = _TEMPORARY.match(p.name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        except (PermissionError, OverflowError):
            pass


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header (Lightning's metrics.csv, a benchmark's results.csv); [] if it does
    not exist. Values stay strings: a missing value is "".
    """
    import csv

    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))

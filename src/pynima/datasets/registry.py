"""The dataset readers by name: each release's module registers its reader with the files that identify the layout
and the scale of its scores (``@register``), as timm's ``register_model`` does for architectures; ``read_dataset``
detects the layout from those files and calls the reader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pynima.config import FORMATS
from pynima.datasets.record import Dataset, Scale
from pynima.errors import DatasetError

__all__ = ["DESCRIBED", "READERS", "Reader", "detect_format", "read_config_dataset", "read_dataset", "register"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reader:
    """One release layout: how to read it and how to know it."""

    name: str  # one of pynima.config.FORMATS, what --format takes
    read: Callable[..., Dataset]  # read(root) -> Dataset; read(root, allow_out_of_range) when ranged is set
    signatures: tuple[str, ...]  # files whose presence identifies the layout (any one), relative to the root
    scale: Scale | None  # the release's score scale (None: given by the user, as for a CSV file)
    ranged: bool = False  # the reader takes allow_out_of_range (labels outside the release's own scale)


READERS: dict[str, Reader] = {}  # filled as pynima.datasets imports each release's module


def register(
    name: str, signatures: tuple[str, ...], scale: Scale | None, ranged: bool = False
) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator: registers a release's reader under ``name``.

    Args:
        name: the format's name, one of ``pynima.config.FORMATS`` (the allowed values are kept there, so that the
            configuration checks them without importing the readers).
        signatures: files (relative to the dataset root) whose presence identifies the layout.
        scale: the release's score scale, or None when the user gives it.
        ranged: whether the reader takes ``allow_out_of_range``.

    Returns:
        The decorator, which returns the reader unchanged.
    """
    if name not in FORMATS or name in READERS:
        raise ValueError(f"dataset format {name!r}: not in pynima.config.FORMATS, or registered twice")

    def add(read: Callable[..., Dataset]) -> Callable[..., Dataset]:
        READERS[name] = Reader(name, read, signatures, scale, ranged)
        return read

    return add


def detect_format(root: Path) -> str:
    """The layout of ``root`` from the files present; a DatasetError listing what was looked for otherwise."""
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise DatasetError(f"{root}: a file, and not a .csv; give a dataset folder or a CSV file")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    names = {p.name.lower() for p in root.iterdir()}
    found = [r.name for r in READERS.values() if any((root / s).exists() or s.lower() in names for s in r.signatures)]
    if not found:
        looked = ", ".join(s for r in READERS.values() for s in r.signatures)
        raise DatasetError(
            f"{root}: not a dataset layout pynima knows (looked for {looked}; a CSV file of your own works too: "
            f"pynima docs datasets)"
        )
    if len(found) > 1:
        raise DatasetError(f"{root}: looks like {' and '.join(found)}; choose with --format")
    return found[0]


def read_dataset(
    root: str | Path,
    format: str | None = None,
    scale: tuple[float, float] | None = None,
    allow_out_of_range: bool = False,
) -> Dataset:
    """The dataset at ``root``, in any layout pynima reads (docs/datasets.md).

    Args:
        root: a dataset folder in its release's layout, or a CSV file.
        format: one of ``pynima.config.FORMATS``; None: detected from the files present.
        scale: a CSV file's score range (low, high); other layouts have their own.
        allow_out_of_range: keep labels outside the release's scale (TID2013 and CSV) instead of refusing them.

    Returns:
        The dataset, its scores mapped onto the model's 0-9 scale.
    """
    root = Path(root)
    fmt = format or detect_format(root)
    if fmt not in READERS:
        raise DatasetError(f"unknown dataset format {fmt!r}; one of {', '.join(FORMATS)}")
    reader = READERS[fmt]
    if reader.scale is None:  # the user's CSV file
        return reader.read(root, scale, allow_out_of_range)
    if scale is not None:
        raise DatasetError(f"{root}: --scale is for CSV datasets; {fmt} has its own scale (pynima docs datasets)")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    dataset = reader.read(root, allow_out_of_range) if reader.ranged else reader.read(root)
    line = f"{root}: {fmt}, {len(dataset.records)} images ({dataset.scale.describe()})"
    # a command reads its dataset several times (train, then its test part; a benchmark per split): say it once
    log.log(logging.DEBUG if line in DESCRIBED else logging.INFO, line)
    DESCRIBED.add(line)
    return dataset


DESCRIBED: set[str] = set()  # the dataset lines already logged in this process


def read_config_dataset(cfg) -> Dataset:
    """The dataset of a ``TrainConfig``."""
    return read_dataset(cfg.data, cfg.format, cfg.scale, cfg.allow_out_of_range)

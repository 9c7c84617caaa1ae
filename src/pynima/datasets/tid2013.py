"""TID2013 (Ponomarenko et al. 2015) and anything written in its layout (``pynima synth``).

TID2013 layout (Ponomarenko et al. 2015; the same for a ``pynima synth`` output)::

    ROOT/
      mos_with_names.txt     "MOS name" per line, e.g. "5.51429 I01_01_1.bmp"; MOS on a 0-9 scale
      mos_std.txt            the std of each MOS, same order (the uncertainty of the mean, not of the votes)
      distorted_images/      i01_01_1.bmp ... iRR_TT_L.bmp: reference RR (01-25), distortion type TT (1-24), level L
      reference_images/      I01.BMP ... (optional for no-reference training)

The real files have CRLF line ends and mixed case (``I01_01_1.bmp`` next to ``i01_01_2.bmp``, and other cases again on
disk), so names are matched case-insensitively.
"""

from __future__ import annotations

import re
from pathlib import Path

from pynima.datasets._tables import parse_number, read_lines
from pynima.datasets.record import MODEL_SCALE, Dataset, Label, Record, problems_error
from pynima.datasets.registry import register
from pynima.errors import DatasetError
from pynima.scale import SCORE_RANGE

__all__ = [
    "DISTORTED_DIR",
    "MOS_FILE",
    "MOS_RANGE",
    "REFERENCE_DIR",
    "STD_FILE",
    "TYPE_NAMES",
    "parse_name",
    "read_labels",
    "read_tid2013",
    "read_tid2013_dataset",
]

MOS_FILE = "mos_with_names.txt"


STD_FILE = "mos_std.txt"


DISTORTED_DIR = "distorted_images"


REFERENCE_DIR = "reference_images"


MOS_RANGE = SCORE_RANGE  # TID2013's scale (observers' scores 0-9), the labels a TID2013 folder may hold


_NAME = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)


# TID2013's 24 distortion types, numbered as in its file names (Ponomarenko et al. 2015, Table 1)
TYPE_NAMES: dict[int, str] = {
    1: "Additive Gaussian noise",
    2: "Additive noise in colour components",
    3: "Spatially correlated noise",
    4: "Masked noise",
    5: "High frequency noise",
    6: "Impulse noise",
    7: "Quantization noise",
    8: "Gaussian blur",
    9: "Image denoising",
    10: "JPEG compression",
    11: "JPEG2000 compression",
    12: "JPEG transmission errors",
    13: "JPEG2000 transmission errors",
    14: "Non eccentricity pattern noise",
    15: "Local block-wise distortions of different intensity",
    16: "Mean shift (intensity shift)",
    17: "Contrast change",
    18: "Change of colour saturation",
    19: "Multiplicative Gaussian noise",
    20: "Comfort noise",
    21: "Lossy compression of noisy images",
    22: "Image colour quantization with dither",
    23: "Chromatic aberrations",
    24: "Sparse sampling and reconstruction",
}


def parse_name(name: str) -> tuple[int, int, int] | None:
    """``"i01_17_3.bmp"`` (any case) -> (ref 1, type 17, level 3); None if not a valid TID2013 name."""
    m = _NAME.match(name.strip())
    if not m:
        return None
    ref, kind, level = (int(g) for g in m.groups())
    if not (1 <= ref <= 99 and 1 <= kind <= 24 and 1 <= level <= 5):
        return None
    return ref, kind, level


def read_labels(mos_file: str | Path, std_file: str | Path, allow_out_of_range: bool = False) -> list[Label]:
    """Parse a ``mos_with_names.txt`` / ``mos_std.txt`` pair (TID2013 format); one DatasetError for all problems.

    A MOS outside TID2013's 0-9 scale (``MOS_RANGE``) is a problem unless ``allow_out_of_range``: a file on another
    scale (0-100, 1-5 DMOS) would otherwise train and evaluate silently wrong.
    """
    mos_file, std_file = Path(mos_file), Path(std_file)
    mos_lines, std_lines = read_lines(mos_file), read_lines(std_file)
    problems: list[str] = []
    if len(mos_lines) != len(std_lines):
        problems.append(f"{std_file}: {len(std_lines)} rows but {mos_file.name} has {len(mos_lines)}")
    labels: list[Label] = []
    for i, (row, std_row) in enumerate(zip(mos_lines, std_lines, strict=False), start=1):  # unequal: reported above
        parts = row.split()
        mos = parse_number(parts[0]) if len(parts) == 2 else None
        key = parse_name(parts[1]) if len(parts) == 2 else None
        std = parse_number(std_row.strip())
        if mos is None or key is None:
            problems.append(f"{mos_file} line {i}: expected 'MOS iRR_TT_L.bmp' with a finite MOS, got {row.strip()!r}")
        if mos is not None and key is not None and not allow_out_of_range and not (MOS_RANGE[0] <= mos <= MOS_RANGE[1]):
            problems.append(
                f"{mos_file} line {i}: MOS {parts[0]} is outside TID2013's {MOS_RANGE[0]:g}-"
                f"{MOS_RANGE[1]:g} scale (--allow-out-of-range accepts it)"
            )
            mos = None
        if std is None or std < 0:
            problems.append(f"{std_file} line {i}: expected a finite non-negative std, got {std_row.strip()!r}")
        if mos is not None and key is not None and std is not None and std >= 0:
            labels.append(Label(parts[1], mos, std, *key, line=i))
    seen: dict[str, int] = {}
    for lab in labels:
        k = lab.name.lower()
        if k in seen:
            problems.append(f"{mos_file} line {lab.line}: {lab.name} already listed on line {seen[k]}")
        seen.setdefault(k, lab.line)
    if not labels and not problems:
        problems.append(f"{mos_file}: no rows")
    if problems:
        raise problems_error(problems)
    return labels


def _index(folder: Path) -> dict[str, Path]:
    """Lower-cased file name -> path, for case-insensitive lookup."""
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def read_tid2013(root: str | Path, allow_out_of_range: bool = False) -> list[Record]:
    """All images of a TID2013-layout dataset, in label-file order.

    Raises one DatasetError naming the file, line and number of problems if the label files disagree, a line does not
    parse, a value is NaN or outside the 0-9 scale (see ``read_labels``), or a listed image is missing from
    ``distorted_images/``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    labels = read_labels(root / MOS_FILE, root / STD_FILE, allow_out_of_range)
    distorted, references = _index(root / DISTORTED_DIR), _index(root / REFERENCE_DIR)
    if not distorted:
        raise DatasetError(f"{root / DISTORTED_DIR}: missing or empty")
    problems, records = [], []
    for lab in labels:
        path = distorted.get(lab.name.lower())
        if path is None:
            problems.append(f"{root / DISTORTED_DIR / lab.name} ({MOS_FILE} line {lab.line}): no such image")
            continue
        ref = next((references[n] for n in (f"i{lab.ref:02d}.bmp", f"i{lab.ref:02d}.png") if n in references), None)
        records.append(Record(path, lab.mos, lab.mos_std, lab.ref, lab.kind, lab.level, ref))
    if problems:
        raise problems_error(problems)
    return records


@register("tid2013", signatures=(MOS_FILE,), scale=MODEL_SCALE, ranged=True)
def read_tid2013_dataset(root: Path, allow_out_of_range: bool = False) -> Dataset:
    """TID2013 (and ``pynima synth`` output): see ``pynima.datasets.tid2013.read_tid2013``."""
    records = read_tid2013(root, allow_out_of_range=allow_out_of_range)
    return Dataset("tid2013", root, records, MODEL_SCALE, authentic=False, type_names=dict(TYPE_NAMES))

"""Reading image-quality datasets: TID2013 and anything written in its layout (``pynima synth``).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pynima.errors import PynimaError

MOS_FILE = "mos_with_names.txt"
STD_FILE = "mos_std.txt"
DISTORTED_DIR = "distorted_images"
REFERENCE_DIR = "reference_images"

IMAGE_SUFFIXES = {".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".ppm", ".gif"}  # what we read

_NAME = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)


class DatasetError(PynimaError):
    """A dataset on disk is malformed; the message names the file, the line and how many problems there are."""


@dataclass(frozen=True)
class Label:
    """One row of a TID2013 label file pair."""

    name: str  # as written in the label file
    mos: float
    mos_std: float
    ref: int  # reference image, 1-25
    kind: int  # distortion type, 1-24
    level: int  # 1-5
    line: int  # 1-based line in the label files


@dataclass(frozen=True)
class Record:
    """One distorted image of a dataset, with its labels and the files on disk."""

    path: Path
    mos: float
    mos_std: float
    ref: int
    kind: int
    level: int
    reference: Path | None  # the reference image, when reference_images/ has it


def parse_name(name: str) -> tuple[int, int, int] | None:
    """``"i01_17_3.bmp"`` (any case) -> (ref 1, type 17, level 3); None if not a valid TID2013 name."""
    m = _NAME.match(name.strip())
    if not m:
        return None
    ref, kind, level = (int(g) for g in m.groups())
    if not (1 <= ref <= 99 and 1 <= kind <= 24 and 1 <= level <= 5):
        return None
    return ref, kind, level


def _problems(problems: list[str]) -> DatasetError:
    more = f" ({len(problems)} problems in all; the first is shown)" if len(problems) > 1 else ""
    return DatasetError(problems[0] + more)


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    lines = text.splitlines()  # handles CRLF
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def read_labels(mos_file: str | Path, std_file: str | Path) -> list[Label]:
    """Parse a ``mos_with_names.txt`` / ``mos_std.txt`` pair (TID2013 format); one DatasetError for all problems."""
    mos_file, std_file = Path(mos_file), Path(std_file)
    mos_lines, std_lines = _lines(mos_file), _lines(std_file)
    problems: list[str] = []
    if len(mos_lines) != len(std_lines):
        problems.append(f"{std_file}: {len(std_lines)} rows but {mos_file.name} has {len(mos_lines)}")
    labels: list[Label] = []
    for i, (row, std_row) in enumerate(zip(mos_lines, std_lines), start=1):
        parts = row.split()
        mos = _number(parts[0]) if len(parts) == 2 else None
        key = parse_name(parts[1]) if len(parts) == 2 else None
        std = _number(std_row.strip())
        if mos is None or key is None:
            problems.append(f"{mos_file} line {i}: expected 'MOS iRR_TT_L.bmp' with a finite MOS, got {row.strip()!r}")
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
        raise _problems(problems)
    return labels


def _index(folder: Path) -> dict[str, Path]:
    """Lower-cased file name -> path, for case-insensitive lookup."""
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def read_tid2013(root: str | Path) -> list[Record]:
    """All images of a TID2013-layout dataset, in label-file order.

    Raises one DatasetError naming the file, line and number of problems if the label files disagree, a line does not
    parse, a value is NaN, or a listed image is missing from ``distorted_images/``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    labels = read_labels(root / MOS_FILE, root / STD_FILE)
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
        raise _problems(problems)
    return records


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an (H, W, 3) uint8 array; a DatasetError names the file if it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))  # convert() would copy an RGB image
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise DatasetError(f"{path}: cannot decode image ({e})") from None


# ---------------------------------------------------------------------------------------------- splits

VAL_CARVE = 0.15  # share of the training references held out for validation when only train/test are given


def split_ratios(values: tuple[float, ...] | list[float], val_carve: float = VAL_CARVE) -> tuple[float, float, float]:
    """(train, val, test) fractions from 3 numbers, or from 2 (train, test: the field's 80/20), in which case
    validation is carved out of the training part (``val_carve`` of it), so the test part stays as given."""
    given = tuple(float(v) for v in values)
    if len(given) not in (2, 3) or min(given) <= 0 or abs(sum(given) - 1) > 1e-6:
        raise DatasetError(f"split ratios must be 2 (train test) or 3 (train val test) positive numbers summing to 1, "
                           f"got {' '.join(f'{v:g}' for v in given)}")
    if len(given) == 2:
        return (given[0] * (1 - val_carve), given[0] * val_carve, given[1])
    return given  # type: ignore[return-value]


def make_split(records: list[Record], mode: str = "reference", ratios: tuple[float, float, float] = (0.7, 0.2, 0.1),
               seed: int = 0) -> dict:
    """Seeded train/val/test split, as a JSON-ready dict of image file names per part.

    ``reference`` (default): the *reference images* are divided, so no scene is in two parts, as the field does.
    ``random``: the images themselves are divided: the reference implementation's protocol, in which the same scenes
    (at other distortions) appear in train and test; offered for comparison only.
    """
    if mode not in ("reference", "random"):
        raise ValueError(f"split mode must be 'reference' or 'random', got {mode!r}")
    units = sorted({r.ref for r in records}) if mode == "reference" else list(range(len(records)))
    if len(units) < 3:
        raise DatasetError(f"a {mode} split needs at least 3 {'references' if mode == 'reference' else 'images'}, "
                           f"got {len(units)}")
    order = [units[i] for i in np.random.default_rng(seed).permutation(len(units))]
    n_train = max(1, round(ratios[0] * len(units)))
    n_val = max(1, round(ratios[1] * len(units)))
    n_train = min(n_train, len(units) - n_val - 1)
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    split: dict = {"mode": mode, "seed": seed, "ratios": list(ratios)}
    for name, chosen in parts.items():
        chosen = set(chosen)
        split[name] = [r.path.name for i, r in enumerate(records) if (r.ref if mode == "reference" else i) in chosen]
    return split


def apply_split(records: list[Record], split: dict, part: str) -> list[Record]:
    """The records of one part of a split (matched by file name, case-insensitively)."""
    wanted = {n.lower() for n in split[part]}
    chosen = [r for r in records if r.path.name.lower() in wanted]
    if len(chosen) != len(wanted):
        raise DatasetError(f"split part {part!r} lists {len(wanted)} images, {len(chosen)} of them are in the dataset")
    return chosen

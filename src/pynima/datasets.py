"""Reading the datasets people train IQA models on, each in its official release layout (docs/datasets.md).

``read_dataset(root)`` detects the layout from the files present (``--format NAME`` forces it) and returns a
``Dataset``: its images as ``pynima.data.Record``s, every score mapped onto the model's 0-9 scale by the dataset's
``Scale`` (kept to report predictions on the dataset's own scale), and the release's official split where it has one.
Every problem is one ``DatasetError`` line naming the file (and line or row), with the number of problems in all.

One reader per release because the releases differ in everything: label files (.txt, .csv, .mat, .xlsx), scales and
their direction (MOS or DMOS), whether a std, a variance or real vote counts are given, and how the reference and the
distortion of an image are known. pyiqa instead converts each release into its own meta-information CSVs first;
pynima reads the files users download, so there is no conversion step to get wrong.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pynima.config import FORMATS
from pynima.data import (
    IMAGE_SUFFIXES,
    MOS_FILE,
    VAL_CARVE,
    DatasetError,
    Record,
    make_split,
    problems_error,
    read_lines,
    read_tid2013,
)
from pynima.scale import SCORE_RANGE

__all__ = [
    "CSIQ_COLUMNS",
    "CSIQ_TYPES",
    "DESCRIBED",
    "Dataset",
    "KADID_TYPES",
    "KONIQ_SCORES",
    "KONIQ_SETS",
    "KONIQ_SETS_FILE",
    "LIVE_FOLDERS",
    "LIVE_TYPES",
    "MODEL_SCALE",
    "SIGNATURES",
    "SPAQ_CACHE",
    "SPAQ_LABELS",
    "SPAQ_SIDE",
    "Scale",
    "TOP",
    "dataset_split",
    "detect_format",
    "read_ava",
    "read_config_dataset",
    "read_csiq",
    "read_csv_dataset",
    "read_dataset",
    "read_kadid10k",
    "read_koniq10k",
    "read_live",
    "read_livec",
    "read_spaq",
    "read_tid2013_dataset",
]

log = logging.getLogger(__name__)

TOP = SCORE_RANGE[1]  # the model's scale is 0..TOP (its 10 bins are the scores 0..9, TID2013's scale)


@dataclass(frozen=True)
class Scale:
    """A dataset's score scale: the ``worst`` and ``best`` possible scores (a DMOS has worst > best), mapped linearly
    onto the model's 0-9 (worst -> 0, best -> 9). Scores beyond the ends map beyond 0-9; targets then put all their
    mass on the end bin (``pynima.labels.max_entropy``)."""

    worst: float
    best: float
    kind: str = "MOS"  # "MOS" or "DMOS" (differential: lower is better)

    def to_model(self, x: float | np.ndarray) -> float | np.ndarray:
        return (x - self.worst) / (self.best - self.worst) * TOP

    def from_model(self, y: float | np.ndarray) -> float | np.ndarray:
        return self.worst + (self.best - self.worst) * np.asarray(y) / TOP

    def spread_to_model(self, s: float) -> float:
        """A std (or any spread) on this scale, on the model's."""
        return s * TOP / abs(self.best - self.worst)

    def describe(self) -> str:
        lo, hi = sorted((self.worst, self.best))
        better = "higher" if self.best > self.worst else "lower"
        return f"{self.kind} {lo:g}-{hi:g}, {better} is better"


MODEL_SCALE = Scale(0.0, TOP)  # TID2013's own scale: the identity


@dataclass
class Dataset:
    """A dataset as read from disk: see the module docstring."""

    format: str
    root: Path
    records: list[Record]
    scale: Scale
    authentic: bool  # camera photos (each image its own reference: splits are by image) or synthetic distortions
    official_split: dict | None = None  # as pynima.data.make_split writes it, when the release has one
    type_names: dict = field(default_factory=dict)  # distortion type -> its name, for per-type results
    labels: str = "human opinion scores (the release's MOS or DMOS)"  # where the scores come from, for reports


def _rows(path: Path, delimiter: str = ",") -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(lower-cased header, [(line, row)]) of a CSV file with a header: BOM, CRLF, quoting and spaces around names
    handled; a missing or unreadable file is a DatasetError."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip().lower() for h in next(reader, [])]
            # strict=False: a row shorter than the header is read as far as it goes (its readers report what lacks)
            rows = [
                (reader.line_num, dict(zip(header, (v.strip() for v in row), strict=False)))
                for row in reader
                if any(row)
            ]
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if not header or not rows:
        raise DatasetError(f"{path}: no header and rows")
    return header, rows


def _require(path: Path, header: list[str], columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise DatasetError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(header)})")


def _float(text: object) -> float | None:
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _files(folder: Path, recursive: bool = False) -> dict[str, Path]:
    """Lower-cased path relative to ``folder`` -> path, of the image files in it: names are matched
    case-insensitively, as releases and file systems disagree on case."""
    if not folder.is_dir():
        return {}
    found = folder.rglob("*") if recursive else folder.iterdir()
    return {
        p.relative_to(folder).as_posix().lower(): p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    }


def _first_dir(root: Path, names: tuple[str, ...]) -> Path:
    for n in names:
        if (root / n).is_dir():
            return root / n
    raise DatasetError(f"{root}: no image folder (looked for {', '.join(n + '/' for n in names)})")


def _spread(scale: Scale, sd: float | None) -> float | None:
    return None if sd is None else scale.spread_to_model(sd)


def _record(
    path: Path,
    score: float,
    scale: Scale,
    ref: int | str,
    kind: int | str = 0,
    level: int = 0,
    sd: float | None = None,
    votes: tuple[float, ...] | None = None,
    name: str | None = None,
    reference: Path | None = None,
) -> Record:
    return Record(
        path,
        float(scale.to_model(score)),
        math.nan,
        ref,
        kind,
        level,
        reference,
        score=score,
        vote_sd=_spread(scale, sd),
        votes=votes,
        name=name,
    )


def _finish(records: list[Record], problems: list[str], what: Path) -> list[Record]:
    if problems:
        raise problems_error(problems)
    if not records:
        raise DatasetError(f"{what}: no images listed")
    return records


# ---------------------------------------------------------------------------------------------- TID2013


def read_tid2013_dataset(root: Path, allow_out_of_range: bool = False) -> Dataset:
    """TID2013 (and ``pynima synth`` output): see ``pynima.data.read_tid2013``."""
    from pynima.distortions import DISTORTIONS

    records = read_tid2013(root, allow_out_of_range=allow_out_of_range)
    return Dataset(
        "tid2013", root, records, MODEL_SCALE, authentic=False, type_names={k: d.name for k, d in DISTORTIONS.items()}
    )


# ---------------------------------------------------------------------------------------------- KADID-10k

# the 25 types of KADID-10k (Lin, Hosu and Saupe 2019, Table 1), numbered as in its file names
KADID_TYPES = (
    "Gaussian blur",
    "Lens blur",
    "Motion blur",
    "Color diffusion",
    "Color shift",
    "Color quantization",
    "Color saturation 1",
    "Color saturation 2",
    "JPEG2000",
    "JPEG",
    "White noise",
    "White noise in color component",
    "Impulse noise",
    "Multiplicative noise",
    "Denoise",
    "Brighten",
    "Darken",
    "Mean shift",
    "Jitter",
    "Non-eccentricity patch",
    "Pixelate",
    "Quantization",
    "Color block",
    "High sharpen",
    "Contrast change",
)
_KADID_NAME = re.compile(r"^i(\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)


def read_kadid10k(root: Path) -> Dataset:
    """KADID-10k: ``dmos.csv`` (dist_img, ref_img, dmos, var) and ``images/`` (I01_01_01.png: reference, type,
    level). Its "dmos" is a mean opinion score on 1-5, higher better, despite the name (the release page says so), and
    its "var" is the standard deviation of the votes, not their variance (4.57 with 0.496 is votes split 57/43
    between 4 and 5: sqrt(0.57 * 0.43) = 0.495)."""
    scale = Scale(1.0, 5.0)
    label_file = root / "dmos.csv"
    header, rows = _rows(label_file)
    _require(label_file, header, ("dist_img", "ref_img", "dmos"))
    images = _files(root / "images")
    records, problems = [], []
    for line, row in rows:
        name, score, sd = row["dist_img"], _float(row["dmos"]), _float(row.get("var", ""))
        m = _KADID_NAME.match(name)
        if m is None or score is None or (row.get("var") and (sd is None or sd < 0)):
            problems.append(
                f"{label_file} line {line}: expected 'I01_01_01.png,I01.png,<dmos>,<var>', got "
                f"{','.join(row.values())!r}"
            )
            continue
        path = images.get(name.lower())
        if path is None:
            problems.append(f"{root / 'images' / name} ({label_file.name} line {line}): no such image")
            continue
        ref, kind, level = (int(g) for g in m.groups())
        records.append(
            _record(path, score, scale, ref, kind, level, sd=sd, reference=images.get(row["ref_img"].lower()))
        )
    return Dataset(
        "kadid10k",
        root,
        _finish(records, problems, label_file),
        scale,
        authentic=False,
        type_names=dict(enumerate(KADID_TYPES, start=1)),
    )


# ---------------------------------------------------------------------------------------------- KonIQ-10k

KONIQ_SCORES, KONIQ_SETS_FILE = "koniq10k_scores_and_distributions.csv", "koniq10k_distributions_sets.csv"
KONIQ_SETS = {"training": "train", "validation": "val", "test": "test"}


def read_koniq10k(root: Path) -> Dataset:
    """KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` (image_name, c1..c5 vote counts, c_total, MOS, SD,
    MOS_zscore; MOS and SD on 1-5) and images in ``1024x768/`` (or the ``512x384/`` release).

    The official split is the ``set`` column (training/validation/test) of ``koniq10k_distributions_sets.csv``
    (from the KonIQ GitHub repository, not the zip). That file has c1..c5 as fractions and the 0-100 MOS_zscore in
    its MOS column, so scores are taken from the scores file; with the sets file alone, the score is the mean vote
    on 1-5 computed from its fractions (what the scores file's MOS is). The score is the mean vote, consistent with
    the vote histograms used as targets, not MOS_zscore."""
    scale = Scale(1.0, 5.0)
    scores, sets = root / KONIQ_SCORES, root / KONIQ_SETS_FILE
    label_file = scores if scores.is_file() or not sets.is_file() else sets
    header, rows = _rows(label_file)
    _require(
        label_file,
        header,
        ("image_name", "c1", "c2", "c3", "c4", "c5") + (("mos",) if label_file == scores else ("set",)),
    )
    folder = _first_dir(root, ("1024x768", "512x384"))
    images = _files(folder)
    records, problems = [], []
    for line, row in rows:
        name, sd = row["image_name"], _float(row.get("sd"))
        votes = tuple(_float(row[f"c{i}"]) for i in range(1, 6))
        valid = all(v is not None and v >= 0 for v in votes) and sum(votes) > 0  # type: ignore[operator,misc]
        score = (
            _float(row["mos"])
            if label_file == scores
            else float(np.dot(np.arange(1, 6), votes) / sum(votes))
            if valid
            else None
        )  # type: ignore[arg-type]
        if score is None or not valid:
            problems.append(f"{label_file} line {line}: expected a MOS and 5 vote counts for {name!r}")
            continue
        path = images.get(name.lower())
        if path is None:
            problems.append(f"{folder / name} ({label_file.name} line {line}): no such image")
            continue
        records.append(_record(path, score, scale, ref=name, sd=sd, votes=votes))  # type: ignore[arg-type]
    records = _finish(records, problems, label_file)
    official = _koniq_split(sets, {r.key.lower() for r in records}) if sets.is_file() else None
    return Dataset("koniq10k", root, records, scale, authentic=True, official_split=official)


def _koniq_split(sets: Path, names: set[str]) -> dict:
    header, rows = _rows(sets)
    _require(sets, header, ("image_name", "set"))
    parts: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    problems = []
    for line, row in rows:
        part = KONIQ_SETS.get(row["set"].lower())
        if part is None:
            problems.append(f"{sets} line {line}: set {row['set']!r} is not one of {', '.join(KONIQ_SETS)}")
        elif row["image_name"].lower() not in names:
            problems.append(f"{sets} line {line}: {row['image_name']} is not in the dataset's scores")
        else:
            parts[part].append(row["image_name"])
    if problems:
        raise problems_error(problems)
    return {"mode": "official", "source": sets.name, **parts}


# ---------------------------------------------------------------------------------------------- .mat and .xlsx


def _loadmat(path: Path, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The named variables (and those of ``optional`` that it has) of a MATLAB file (v7 or older, as the LIVE
    releases are), or a one-line DatasetError."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except NotImplementedError:  # scipy's message for v7.3 files, which are HDF5
        raise DatasetError(
            f"{path}: a MATLAB v7.3 (HDF5) file; the release's own files are v7 or older, which "
            f"scipy reads (save it again with save(..., '-v7'))"
        ) from None
    except (OSError, ValueError, TypeError) as e:
        raise DatasetError(f"{path}: not a readable MATLAB file ({e})") from None
    missing = [n for n in names if n not in mat]
    if missing:
        found = ", ".join(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path}: no variable {', '.join(missing)} (variables: {found})")
    return {n: mat[n] for n in names + optional if n in mat}


def _strings(cells: np.ndarray) -> list[str]:
    """A MATLAB cell array of strings as loaded by scipy (an object array of 1-element string arrays)."""
    return [str(np.asarray(c).ravel()[0]) if np.asarray(c).size else "" for c in cells.ravel()]


def _sheet_rows(path: Path, sheet: str | None, columns: tuple[str, ...]) -> list[tuple[int, dict[str, object]]]:
    """[(row number, {column: value})] of an xlsx sheet (the first if ``sheet`` is None) below its header row: the
    first row holding every name of ``columns`` (CSIQ's header is on row 4, columns D-I). Empty rows are left out."""
    try:
        from openpyxl import load_workbook
    except ImportError:
        raise DatasetError(f"{path}: reading .xlsx needs openpyxl (pip install 'pynima[train]')") from None
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except Exception as e:  # noqa: BLE001 - openpyxl raises zipfile, KeyError and XML errors for broken files
        raise DatasetError(f"{path}: not a readable .xlsx workbook ({type(e).__name__}: {e})") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise DatasetError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(book.sheetnames)})")
        ws = book[sheet] if sheet else book.worksheets[0]
        header: dict[str, int] | None = None
        rows = []
        for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
            cells = [str(v).strip().lower() if v is not None else "" for v in values]
            if header is None:
                if all(c in cells for c in columns):
                    header = {c: i for i, c in enumerate(cells) if c}
                continue
            if any(v is not None and str(v).strip() for v in values):
                rows.append((number, {c: values[i] if i < len(values) else None for c, i in header.items()}))
    finally:
        book.close()
    if header is None:
        raise DatasetError(
            f"{path}: no header row with {', '.join(columns)}" + (f" in sheet {sheet!r}" if sheet else "")
        )
    return rows


# ---------------------------------------------------------------------------------------------- LIVE

# LIVE Release 2's folders in the order of its dmos vector, with how many entries each has (reference copies included)
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))
LIVE_TYPES = {
    "jp2k": "JPEG2000",
    "jpeg": "JPEG",
    "wn": "White noise",
    "gblur": "Gaussian blur",
    "fastfading": "Fast fading (JPEG2000 over a Rayleigh channel)",
}


def read_live(root: Path) -> Dataset:
    """LIVE Release 2: ``jp2k/ jpeg/ wn/ gblur/ fastfading/`` (img1.bmp...), ``refimgs/``, ``refnames_all.mat``
    (``refnames_all``, 1x982 cell: each entry's reference) and the DMOS: ``dmos_realigned.mat`` (``dmos_new``,
    ``dmos_std``, ``orgs``; the release's update, used when present) or ``dmos.mat`` (``dmos``, ``orgs``). The 982
    entries run through the folders in LIVE_FOLDERS order; ``orgs`` == 1 marks the 203 copies of reference images
    inside the folders, which are left out (779 distorted images). DMOS: lower is better, about 0-100."""
    scale = Scale(100.0, 0.0, "DMOS")
    realigned = root / "dmos_realigned.mat"
    if realigned.is_file():
        mat = _loadmat(realigned, ("dmos_new", "orgs"), optional=("dmos_std",))
        dmos, orgs, source = mat["dmos_new"].ravel(), mat["orgs"].ravel(), realigned
        std = mat["dmos_std"].ravel() if "dmos_std" in mat else None
    else:
        source = root / "dmos.mat"
        mat = _loadmat(source, ("dmos", "orgs"))
        dmos, orgs, std = mat["dmos"].ravel(), mat["orgs"].ravel(), None
    refnames = _strings(_loadmat(root / "refnames_all.mat", ("refnames_all",))["refnames_all"])
    total = sum(n for _, n in LIVE_FOLDERS)
    for what, values in ((source.name, dmos), (source.name + " orgs", orgs), ("refnames_all.mat", refnames)):
        if len(values) != total:
            raise DatasetError(f"{root / what.split()[0]}: {len(values)} entries, LIVE Release 2 has {total}")
    references = _files(root / "refimgs")
    records, problems, i = [], [], 0
    for folder, count in LIVE_FOLDERS:
        files = _files(root / folder)
        for n in range(1, count + 1):
            j, i = i, i + 1
            if orgs[j] == 1:
                continue
            name = f"img{n}.bmp"
            path = files.get(name)
            score = _float(dmos[j])
            if path is None or score is None:
                problems.append(
                    f"{root / folder / name} (entry {j + 1} of {source.name}): "
                    + ("no such image" if path is None else f"DMOS {dmos[j]!r} is not a number")
                )
                continue
            ref = Path(refnames[j]).stem
            sd = _float(std[j]) if std is not None else None
            records.append(
                _record(
                    path,
                    score,
                    scale,
                    ref,
                    kind=folder,
                    sd=sd,
                    name=f"{folder}/{name}",
                    reference=references.get(refnames[j].lower()),
                )
            )
    return Dataset(
        "live", root, _finish(records, problems, source), scale, authentic=False, type_names=dict(LIVE_TYPES)
    )


# ---------------------------------------------------------------------------------------------- CSIQ

# the DMOS sheet's dst_type -> (folder in dst_imgs/, the type's token in file names): 1600.AWGN.1.png in awgn/
CSIQ_TYPES = {
    "noise": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}
CSIQ_COLUMNS = ("image", "dst_type", "dst_lev", "dmos")


def read_csiq(root: Path) -> Dataset:
    """CSIQ: ``csiq.DMOS.xlsx`` (sheet ``all_by_image``, header on row 4: image, dst_idx, dst_type, dst_lev,
    dmos_std, dmos; or ``csiq.DMOS.csv``, that sheet saved as CSV), ``dst_imgs/<type>/<image>.<TYPE>.<level>.png``
    and ``src_imgs/<image>.png``. 866 images of 30 references, 6 types; DMOS 0-1, lower is better. Folder and file
    names are matched case-insensitively (mirrors differ); the sheet, not the folder, says which images are rated."""
    scale = Scale(1.0, 0.0, "DMOS")
    xlsx, csv_file = root / "csiq.DMOS.xlsx", root / "csiq.DMOS.csv"
    if xlsx.is_file() or not csv_file.is_file():
        label_file, rows = xlsx, _sheet_rows(xlsx, "all_by_image", CSIQ_COLUMNS)
    else:
        label_file, rows = csv_file, _csv_sheet(csv_file, CSIQ_COLUMNS)
    images, references = _files(root / "dst_imgs", recursive=True), _files(root / "src_imgs")
    records, problems = [], []
    for number, row in rows:
        image_name = row["image"]
        if isinstance(image_name, float) and image_name.is_integer():
            image_name = int(image_name)  # the sheet stores the image "1600" as a number
        image_name = str(image_name).strip() if image_name is not None else ""
        kind = CSIQ_TYPES.get(str(row["dst_type"] or "").strip().lower())
        level, score, sd = _float(row["dst_lev"]), _float(row["dmos"]), _float(row.get("dmos_std"))
        where = f"{label_file} row {number}"
        if not image_name or kind is None or level is None or not level.is_integer() or score is None:
            problems.append(
                f"{where}: expected an image, a type ({', '.join(CSIQ_TYPES)}), a whole level and a "
                f"DMOS, got {[row[c] for c in CSIQ_COLUMNS]}"
            )
            continue
        folder, token = kind
        rel = f"{folder}/{image_name}.{token}.{int(level)}.png"
        path = images.get(rel.lower())
        if path is None:
            problems.append(f"{root / 'dst_imgs' / rel} ({label_file.name} row {number}): no such image")
            continue
        records.append(
            _record(
                path,
                score,
                scale,
                image_name,
                kind=folder,
                level=int(level),
                sd=sd,
                name=rel,
                reference=references.get(f"{image_name}.png".lower()),
            )
        )
    return Dataset(
        "csiq",
        root,
        _finish(records, problems, label_file),
        scale,
        authentic=False,
        type_names={
            "awgn": "Additive white Gaussian noise",
            "jpeg": "JPEG",
            "jpeg2000": "JPEG2000",
            "fnoise": "Additive pink (1/f) noise",
            "blur": "Gaussian blur",
            "contrast": "Global contrast decrement",
        },
    )


def _csv_sheet(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, object]]]:
    """A spreadsheet saved as CSV: rows below the first line that holds every name of ``columns``."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    for start, cells in enumerate(lines):
        names = [c.strip().lower() for c in cells]
        if all(c in names for c in columns):
            header = {c: i for i, c in enumerate(names) if c}
            return [
                (n, {c: (row[i].strip() or None) if i < len(row) else None for c, i in header.items()})
                for n, row in enumerate(lines[start + 1 :], start=start + 2)
                if any(v.strip() for v in row)
            ]
    raise DatasetError(f"{path}: no header line with {', '.join(columns)}")


# ---------------------------------------------------------------------------------------------- LIVE Challenge


def read_livec(root: Path) -> Dataset:
    """LIVE In the Wild Image Quality Challenge: ``Images/``, ``Data/AllImages_release.mat`` (``AllImages_release``,
    1169x1 cell of names), ``Data/AllMOS_release.mat`` and ``Data/AllStdDev_release.mat`` (1x1169; MOS 0-100, higher
    better; the std of the ~175 ratings per image). The release's first 7 entries, t1.bmp-t7.bmp in
    ``Images/trainingImages/``, were shown to subjects to train them and are not part of the database's 1162 images:
    they are left out, as the release's readme and every published protocol do."""
    scale = Scale(0.0, 100.0)
    data = root / "Data"
    names = _strings(_loadmat(data / "AllImages_release.mat", ("AllImages_release",))["AllImages_release"])
    mos = _loadmat(data / "AllMOS_release.mat", ("AllMOS_release",))["AllMOS_release"].ravel()
    std = _loadmat(data / "AllStdDev_release.mat", ("AllStdDev_release",))["AllStdDev_release"].ravel()
    if not len(names) == len(mos) == len(std):
        raise DatasetError(
            f"{data}: AllImages_release, AllMOS_release and AllStdDev_release have {len(names)}, "
            f"{len(mos)} and {len(std)} entries; they must match"
        )
    images, training = _files(root / "Images"), _files(root / "Images" / "trainingImages")
    records, problems, left_out = [], [], 0
    for i, (name, score, sd) in enumerate(zip(names, mos, std, strict=True), start=1):
        if name.lower() in training or (name.lower() not in images and re.fullmatch(r"t\d+\.bmp", name.lower())):
            left_out += 1
            continue
        path = images.get(name.lower())
        score, sd = _float(score), _float(sd)
        if path is None or score is None:
            problems.append(
                f"{root / 'Images' / name} (entry {i} of AllImages_release.mat): "
                + ("no such image" if path is None else "MOS is not a number")
            )
            continue
        records.append(_record(path, score, scale, ref=name, sd=sd if sd is not None and sd >= 0 else None))
    log.info("%s: %d subject-training image(s) (Images/trainingImages) left out", root, left_out)
    return Dataset("livec", root, _finish(records, problems, data / "AllImages_release.mat"), scale, authentic=True)


# ---------------------------------------------------------------------------------------------- SPAQ

SPAQ_LABELS = Path("Annotations") / "MOS and Image attribute scores.xlsx"
SPAQ_SIDE = 512  # SPAQ's phone photos (up to 4000x3000) are scored with the shorter side resized to this
SPAQ_CACHE = f"TestImage_{SPAQ_SIDE}"


def read_spaq(root: Path, workers: int = 4) -> Dataset:
    """SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (first sheet: Image name, MOS, then five attribute
    scores; MOS 0-100, higher better; no std) and ``TestImage/`` (11125 JPEGs from 66 phones, up to 4000x3000).

    Resize policy, as the SPAQ authors' code: the shorter side is resized to 512 (Lanczos, aspect kept; EXIF
    orientation applied first, as for every image pynima reads), once, into ``TestImage_512/`` next to
    ``TestImage/`` as PNG (lossless, so the resize adds no compression of its own). Later reads reuse those files;
    an original that changes afterwards is resized again (its cached copy is older)."""
    scale = Scale(0.0, 100.0)
    label_file = root / SPAQ_LABELS
    rows = _sheet_rows(label_file, None, ("image name", "mos"))
    originals = _files(root / "TestImage")
    if not originals:
        raise DatasetError(f"{root / 'TestImage'}: missing or empty")
    listed, problems = [], []
    for number, row in rows:
        name, score = str(row["image name"] or "").strip(), _float(row["mos"])
        path = originals.get(name.lower())
        if not name or score is None:
            problems.append(
                f"{label_file} row {number}: expected an image name and a MOS, got "
                f"{row['image name']!r}, {row['mos']!r}"
            )
        elif path is None:
            problems.append(f"{root / 'TestImage' / name} ({SPAQ_LABELS.name} row {number}): no such image")
        else:
            listed.append((name, score, path))
    if problems:
        raise problems_error(problems)
    resized = _resize_once([p for _, _, p in listed], root / SPAQ_CACHE, workers)
    records = [
        _record(small, score, scale, ref=name, name=name)
        for (name, score, _), small in zip(listed, resized, strict=True)
    ]
    return Dataset("spaq", root, _finish(records, [], label_file), scale, authentic=True)


def _resize_once(paths: list[Path], cache: Path, workers: int) -> list[Path]:
    """Each image with its shorter side resized to SPAQ_SIDE (never enlarged), as a PNG in ``cache``, made only when
    missing or older than the original; written atomically. One DatasetError for every original that cannot be read."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from pynima.data import load_rgb
    from pynima.files import atomic_path

    cache.mkdir(exist_ok=True)

    def one(path: Path) -> tuple[Path, str | None]:
        out = cache / f"{path.stem}.png"
        if out.is_file() and out.stat().st_mtime >= path.stat().st_mtime:
            return out, None
        try:
            im = Image.fromarray(load_rgb(path))
        except DatasetError as e:
            return out, str(e)
        w, h = im.size
        if min(w, h) > SPAQ_SIDE:
            f = SPAQ_SIDE / min(w, h)
            im = im.resize((max(SPAQ_SIDE, round(w * f)), max(SPAQ_SIDE, round(h * f))), Image.Resampling.LANCZOS)
        with atomic_path(out) as tmp:
            im.save(tmp, format="PNG", compress_level=1)
        return out, None

    todo = sum(1 for p in paths if not (cache / f"{p.stem}.png").is_file())
    if todo:
        log.warning(
            "%s: resizing %d image(s) to a shorter side of %d px, once (later reads reuse them)", cache, todo, SPAQ_SIDE
        )
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one, paths))
    problems = [e for _, e in done if e]
    if problems:
        raise problems_error(problems)
    return [p for p, _ in done]


# ---------------------------------------------------------------------------------------------- AVA


def read_ava(root: Path) -> Dataset:
    """AVA: ``AVA.txt``, one image per line: index, image id, the vote counts for scores 1..10, two semantic tag ids,
    the challenge id (space-separated); images ``images/<id>.jpg``. The score is the mean vote (1-10)."""
    scale = Scale(1.0, 10.0)
    label_file = root / "AVA.txt"
    lines = read_lines(label_file)
    folder = _first_dir(root, ("images",))
    images = _files(folder)
    levels = np.arange(1, 11)
    records, problems = [], []
    for i, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        parts = text.split()
        counts = [_float(v) for v in parts[2:12]]
        if len(parts) != 15 or any(c is None or c < 0 for c in counts) or sum(counts) <= 0:  # type: ignore[misc]
            problems.append(
                f"{label_file} line {i}: expected 15 numbers (index, image id, 10 vote counts, 2 tags, "
                f"challenge), got {text.strip()[:80]!r}"
            )
            continue
        image_id = parts[1]
        path = images.get(f"{image_id}.jpg")
        if path is None:
            problems.append(f"{folder / (image_id + '.jpg')} ({label_file.name} line {i}): no such image")
            continue
        v = np.array(counts)
        mean = float((v * levels).sum() / v.sum())
        sd = float(np.sqrt((v * (levels - mean) ** 2).sum() / v.sum()))
        records.append(_record(path, mean, scale, ref=image_id, sd=sd, votes=tuple(counts)))  # type: ignore[arg-type]
    return Dataset(
        "ava",
        root,
        _finish(records, problems, label_file),
        scale,
        authentic=True,
        official_split=_ava_split(root, {r.ref for r in records}),
    )


def _ava_split(root: Path, ids: set) -> dict | None:
    """AVA's official test list (``aesthetics_image_lists/generic_test.jpgl``, one image id per line), when present:
    those images are the test part, every other listed image the training part."""
    path = root / "aesthetics_image_lists" / "generic_test.jpgl"
    if not path.is_file():
        return None
    test = {t.strip() for t in path.read_text().split() if t.strip()}
    unknown = sorted(test - ids)
    if unknown:
        log.warning(
            "%s: %d test image(s) not in AVA.txt or without a file, left out (first: %s)",
            path,
            len(unknown),
            unknown[0],
        )
    return {
        "mode": "official",
        "source": str(path.relative_to(root)),
        "train": sorted(f"{i}.jpg" for i in ids - test),
        "val": [],
        "test": sorted(f"{i}.jpg" for i in ids & test),
    }


# ---------------------------------------------------------------------------------------------- generic CSV


def read_csv_dataset(path: Path, scale: tuple[float, float] | None, allow_out_of_range: bool = False) -> Dataset:
    """A CSV file of your own: columns ``path`` (relative to the CSV's folder) and ``mos``; optional ``std`` (of
    the votes), ``ref``, ``type``, ``level``, and vote counts ``c1..cN`` (N levels spanning the scale, worst first).
    The scale must be given (``--scale WORST BEST``: ``1 5`` for a 1-5 MOS, ``100 0`` for a 0-100 DMOS): scores
    outside it are an error unless ``allow_out_of_range``. Without ``ref`` each image is its own reference."""
    if scale is None:
        raise DatasetError(
            f"{path}: a CSV dataset needs its scale: --scale WORST BEST (e.g. --scale 1 5 for a 1-5 "
            f"MOS, --scale 100 0 for a 0-100 DMOS)"
        )
    s = Scale(float(scale[0]), float(scale[1]), "MOS" if scale[1] > scale[0] else "DMOS")
    lo, hi = sorted(scale)
    header, rows = _rows(path)
    _require(path, header, ("path", "mos"))
    vote_cols = sorted((c for c in header if re.fullmatch(r"c\d+", c)), key=lambda c: int(c[1:]))
    if vote_cols and vote_cols != [f"c{i}" for i in range(1, len(vote_cols) + 1)]:
        raise DatasetError(f"{path}: vote columns must be c1..cN without gaps, got {', '.join(vote_cols)}")
    base = path.parent
    records, problems, seen = [], [], {}
    for line, row in rows:
        rel, score, sd = row["path"], _float(row["mos"]), _float(row.get("std"))
        where = f"{path} line {line}"
        if not rel or score is None:
            problems.append(f"{where}: expected a path and a finite mos, got {row.get('path')!r}, {row.get('mos')!r}")
            continue
        if not allow_out_of_range and not lo <= score <= hi:
            problems.append(
                f"{where}: mos {score:g} is outside the scale {lo:g}-{hi:g} (--scale; --allow-out-of-range accepts it)"
            )
            continue
        if row.get("std") and (sd is None or sd < 0):
            problems.append(f"{where}: std must be a finite non-negative number, got {row['std']!r}")
            continue
        votes = None
        if vote_cols:
            counts = [_float(row.get(c)) for c in vote_cols]
            if any(c is None or c < 0 for c in counts) or sum(counts) <= 0:  # type: ignore[misc]
                problems.append(
                    f"{where}: vote counts {', '.join(vote_cols)} must be non-negative with a positive total"
                )
                continue
            votes = tuple(counts if s.best > s.worst else counts[::-1])  # worst level first
        level = row.get("level") or "0"
        if not level.isdigit():
            problems.append(f"{where}: level must be a whole number, got {level!r}")
            continue
        file = base / rel
        if not file.is_file():
            problems.append(f"{file} ({path.name} line {line}): no such image")
            continue
        key = Path(rel).as_posix()
        if key.lower() in seen:
            problems.append(f"{where}: {rel} already listed on line {seen[key.lower()]}")
            continue
        seen[key.lower()] = line
        kind = row.get("type") or 0
        records.append(
            _record(
                file,
                score,
                s,
                ref=row.get("ref") or key,
                kind=int(kind) if str(kind).isdigit() else kind,
                level=int(level),
                sd=sd,
                votes=votes,
                name=key,
            )
        )  # type: ignore[arg-type]
    authentic = "ref" not in header
    return Dataset(
        "csv", path, _finish(records, problems, path), s, authentic=authentic, labels=f"the scores of {path.name}"
    )


# ---------------------------------------------------------------------------------------------- detection

# format -> files whose presence identifies it (any one), relative to the dataset root
SIGNATURES: dict[str, tuple[str, ...]] = {
    "tid2013": (MOS_FILE,),
    "kadid10k": ("dmos.csv",),
    "koniq10k": (KONIQ_SCORES, KONIQ_SETS_FILE),
    "live": ("refnames_all.mat", "dmos_realigned.mat", "dmos.mat"),
    "csiq": ("csiq.DMOS.xlsx", "csiq.DMOS.csv", "dst_imgs"),
    "livec": ("Data/AllMOS_release.mat",),
    "spaq": ("Annotations/MOS and Image attribute scores.xlsx",),
    "ava": ("AVA.txt",),
}


def detect_format(root: Path) -> str:
    """The layout of ``root`` from the files present; a DatasetError listing what was looked for otherwise."""
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise DatasetError(f"{root}: a file, and not a .csv; give a dataset folder or a CSV file")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    names = {p.name.lower() for p in root.iterdir()}
    found = [fmt for fmt, sig in SIGNATURES.items() if any((root / s).exists() or s.lower() in names for s in sig)]
    if not found:
        raise DatasetError(
            f"{root}: not a dataset layout pynima knows (looked for "
            f"{', '.join(s for sig in SIGNATURES.values() for s in sig)}; a CSV file of your own "
            f"works too: pynima docs datasets)"
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
    """The dataset at ``root`` (a folder, or a CSV file) in ``format`` (one of FORMATS; None: detected)."""
    root = Path(root)
    fmt = format or detect_format(root)
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return read_csv_dataset(root, scale, allow_out_of_range)
    if scale is not None:
        raise DatasetError(f"{root}: --scale is for CSV datasets; {fmt} has its own scale (pynima docs datasets)")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    readers: dict[str, Callable[..., Dataset]] = {
        "tid2013": lambda r: read_tid2013_dataset(r, allow_out_of_range),
        "kadid10k": read_kadid10k,
        "koniq10k": read_koniq10k,
        "live": read_live,
        "csiq": read_csiq,
        "livec": read_livec,
        "spaq": read_spaq,
        "ava": read_ava,
    }
    dataset = readers[fmt](root)
    line = f"{root}: {fmt}, {len(dataset.records)} images ({dataset.scale.describe()})"
    # a command reads its dataset several times (train, then its test part; a benchmark per split): say it once
    log.log(logging.DEBUG if line in DESCRIBED else logging.INFO, line)
    DESCRIBED.add(line)
    return dataset


DESCRIBED: set[str] = set()  # the dataset lines already logged in this process


def dataset_split(dataset: Dataset, mode: str, ratios: tuple[float, float, float], seed: int) -> dict:
    """A split of ``dataset`` as ``pynima.data.make_split`` writes it. ``mode`` "official": the release's own split
    (KonIQ's ``set`` column, AVA's test list); when it has no validation part, ``VAL_CARVE`` of its training images
    are drawn for validation with ``seed``; ``ratios`` do not apply. Other modes: ``make_split``."""
    if mode != "official":
        return make_split(dataset.records, mode, ratios, seed)
    official = dataset.official_split
    if official is None:
        raise DatasetError(
            f"{dataset.root}: {dataset.format} has no official split here (KonIQ-10k's "
            f"koniq10k_distributions_sets.csv and AVA's aesthetics_image_lists/ have one); use "
            f"--split reference"
        )
    split = {
        "mode": "official",
        "seed": seed,
        "source": official.get("source"),
        "train": list(official["train"]),
        "val": list(official["val"]),
        "test": list(official["test"]),
    }
    if not split["val"]:
        train = split["train"]
        chosen = set(np.random.default_rng(seed).permutation(len(train))[: max(1, round(VAL_CARVE * len(train)))])
        split["train"] = [n for i, n in enumerate(train) if i not in chosen]
        split["val"] = [n for i, n in enumerate(train) if i in chosen]
    return split


def read_config_dataset(cfg) -> Dataset:
    """The dataset of a ``TrainConfig``."""
    return read_dataset(cfg.data, cfg.format, cfg.scale, cfg.allow_out_of_range)

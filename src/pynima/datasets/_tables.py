"""The parsing every reader shares: text lines, CSV rows, xlsx sheets, MATLAB files, numbers, records and the
one-line problems they raise. Private to the package (the leading underscore); its names are the readers' seam.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from pynima.datasets.record import Record, Scale, problems_error
from pynima.errors import DatasetError
from pynima.images import IMAGE_SUFFIXES

__all__ = [
    "cell_strings",
    "csv_rows",
    "csv_sheet",
    "files_by_name",
    "finish_records",
    "first_dir",
    "make_record",
    "parse_number",
    "read_lines",
    "read_mat",
    "require_columns",
    "sheet_rows",
    "to_float",
]


def read_lines(path: Path) -> list[str]:
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


def parse_number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


def csv_rows(path: Path, delimiter: str = ",") -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(lower-cased header, [(line, row)]) of a CSV file with a header: BOM, CRLF, quoting and spaces around names
    handled; a missing or unreadable file is a DatasetError.
    """
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


def require_columns(path: Path, header: list[str], columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise DatasetError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(header)})")


def to_float(text: object) -> float | None:
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def files_by_name(folder: Path, recursive: bool = False) -> dict[str, Path]:
    """Lower-cased path relative to ``folder`` -> path, of the image files in it: names are matched
    case-insensitively, as releases and file systems disagree on case.
    """
    if not folder.is_dir():
        return {}
    found = folder.rglob("*") if recursive else folder.iterdir()
    return {
        p.relative_to(folder).as_posix().lower(): p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    }


def first_dir(root: Path, names: tuple[str, ...]) -> Path:
    for n in names:
        if (root / n).is_dir():
            return root / n
    raise DatasetError(f"{root}: no image folder (looked for {', '.join(n + '/' for n in names)})")


def _spread(scale: Scale, sd: float | None) -> float | None:
    return None if sd is None else scale.spread_to_model(sd)


def make_record(
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


def finish_records(records: list[Record], problems: list[str], what: Path) -> list[Record]:
    if problems:
        raise problems_error(problems)
    if not records:
        raise DatasetError(f"{what}: no images listed")
    return records


def read_mat(path: Path, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The named variables (and those of ``optional`` that it has) of a MATLAB file (v7 or older, as the LIVE
    releases are), or a one-line DatasetError.
    """
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


def cell_strings(cells: np.ndarray) -> list[str]:
    """A MATLAB cell array of strings as loaded by scipy (an object array of 1-element string arrays)."""
    return [str(np.asarray(c).ravel()[0]) if np.asarray(c).size else "" for c in cells.ravel()]


def sheet_rows(path: Path, sheet: str | None, columns: tuple[str, ...]) -> list[tuple[int, dict[str, object]]]:
    """[(row number, {column: value})] of an xlsx sheet (the first if ``sheet`` is None) below its header row: the
    first row holding every name of ``columns`` (CSIQ's header is on row 4, columns D-I). Empty rows are left out.
    """
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


def csv_sheet(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, object]]]:
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

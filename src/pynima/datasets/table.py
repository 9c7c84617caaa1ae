"""A CSV file of one's own: ``path,score`` (and optional ``ref``, ``kind``, ``level``, ``std``) on a scale given
with ``--scale LO HI``.
"""

from __future__ import annotations

import re
from pathlib import Path

from pynima.datasets._tables import csv_rows, finish_records, make_record, require_columns, to_float
from pynima.datasets.record import Dataset, Scale
from pynima.datasets.registry import register
from pynima.errors import DatasetError

__all__ = ["read_csv_dataset"]


@register("csv", signatures=(), scale=None)
def read_csv_dataset(path: Path, scale: tuple[float, float] | None, allow_out_of_range: bool = False) -> Dataset:
    """A CSV file of your own: columns ``path`` (relative to the CSV's folder) and ``mos``; optional ``std`` (of
    the votes), ``ref``, ``type``, ``level``, and vote counts ``c1..cN`` (N levels spanning the scale, worst first).
    The scale must be given (``--scale WORST BEST``: ``1 5`` for a 1-5 MOS, ``100 0`` for a 0-100 DMOS): scores
    outside it are an error unless ``allow_out_of_range``. Without ``ref`` each image is its own reference.
    """
    if scale is None:
        raise DatasetError(
            f"{path}: a CSV dataset needs its scale: --scale WORST BEST (e.g. --scale 1 5 for a 1-5 "
            f"MOS, --scale 100 0 for a 0-100 DMOS)"
        )
    s = Scale(float(scale[0]), float(scale[1]), "MOS" if scale[1] > scale[0] else "DMOS")
    lo, hi = sorted(scale)
    header, rows = csv_rows(path)
    require_columns(path, header, ("path", "mos"))
    vote_cols = sorted((c for c in header if re.fullmatch(r"c\d+", c)), key=lambda c: int(c[1:]))
    if vote_cols and vote_cols != [f"c{i}" for i in range(1, len(vote_cols) + 1)]:
        raise DatasetError(f"{path}: vote columns must be c1..cN without gaps, got {', '.join(vote_cols)}")
    base = path.parent
    records, problems, seen = [], [], {}
    for line, row in rows:
        rel, score, sd = row["path"], to_float(row["mos"]), to_float(row.get("std"))
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
            counts = [to_float(row.get(c)) for c in vote_cols]
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
            make_record(
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
        "csv",
        path,
        finish_records(records, problems, path),
        s,
        authentic=authentic,
        labels=f"the scores of {path.name}",
    )

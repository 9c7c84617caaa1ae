"""KonIQ-10k (Hosu et al. 2020): ``koniq10k_scores_and_distributions.csv`` with the vote counts per score, and its
official train/validation/test sets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pynima.datasets._tables import (
    csv_rows,
    files_by_name,
    finish_records,
    first_dir,
    make_record,
    require_columns,
    to_float,
)
from pynima.datasets.record import Dataset, Scale, problems_error
from pynima.datasets.registry import register

__all__ = ["KONIQ_SCORES", "KONIQ_SETS", "KONIQ_SETS_FILE", "SCALE", "read_koniq10k"]

KONIQ_SCORES, KONIQ_SETS_FILE = "koniq10k_scores_and_distributions.csv", "koniq10k_distributions_sets.csv"


KONIQ_SETS = {"training": "train", "validation": "val", "test": "test"}


SCALE = Scale(1.0, 5.0)


@register("koniq10k", signatures=(KONIQ_SCORES, KONIQ_SETS_FILE), scale=SCALE)
def read_koniq10k(root: Path) -> Dataset:
    """KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` (image_name, c1..c5 vote counts, c_total, MOS, SD,
    MOS_zscore; MOS and SD on 1-5) and images in ``1024x768/`` (or the ``512x384/`` release).

    The official split is the ``set`` column (training/validation/test) of ``koniq10k_distributions_sets.csv``
    (from the KonIQ GitHub repository, not the zip). That file has c1..c5 as fractions and the 0-100 MOS_zscore in
    its MOS column, so scores are taken from the scores file; with the sets file alone, the score is the mean vote
    on 1-5 computed from its fractions (what the scores file's MOS is). The score is the mean vote, consistent with
    the vote histograms used as targets, not MOS_zscore.
    """
    scale = SCALE
    scores, sets = root / KONIQ_SCORES, root / KONIQ_SETS_FILE
    label_file = scores if scores.is_file() or not sets.is_file() else sets
    header, rows = csv_rows(label_file)
    require_columns(
        label_file,
        header,
        ("image_name", "c1", "c2", "c3", "c4", "c5") + (("mos",) if label_file == scores else ("set",)),
    )
    folder = first_dir(root, ("1024x768", "512x384"))
    images = files_by_name(folder)
    records, problems = [], []
    for line, row in rows:
        name, sd = row["image_name"], to_float(row.get("sd"))
        votes = tuple(to_float(row[f"c{i}"]) for i in range(1, 6))
        valid = all(v is not None and v >= 0 for v in votes) and sum(votes) > 0  # type: ignore[operator,misc]
        score = (
            to_float(row["mos"])
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
        records.append(make_record(path, score, scale, ref=name, sd=sd, votes=votes))  # type: ignore[arg-type]
    records = finish_records(records, problems, label_file)
    official = _koniq_split(sets, {r.key.lower() for r in records}) if sets.is_file() else None
    return Dataset("koniq10k", root, records, scale, authentic=True, official_split=official)


def _koniq_split(sets: Path, names: set[str]) -> dict:
    header, rows = csv_rows(sets)
    require_columns(sets, header, ("image_name", "set"))
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

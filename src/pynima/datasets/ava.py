"""AVA (Murray et al. 2012): aesthetic ratings, vote counts for 1-10 per image in ``AVA.txt``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pynima.datasets._tables import files_by_name, finish_records, first_dir, make_record, read_lines, to_float
from pynima.datasets.record import Dataset, Scale
from pynima.datasets.registry import register

__all__ = ["SCALE", "read_ava"]

log = logging.getLogger(__name__)


SCALE = Scale(1.0, 10.0)


@register("ava", signatures=("AVA.txt",), scale=SCALE)
def read_ava(root: Path) -> Dataset:
    """AVA: ``AVA.txt``, one image per line: index, image id, the vote counts for scores 1..10, two semantic tag ids,
    the challenge id (space-separated); images ``images/<id>.jpg``. The score is the mean vote (1-10).
    """
    scale = SCALE
    label_file = root / "AVA.txt"
    lines = read_lines(label_file)
    folder = first_dir(root, ("images",))
    images = files_by_name(folder)
    levels = np.arange(1, 11)
    records, problems = [], []
    for i, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        parts = text.split()
        counts = [to_float(v) for v in parts[2:12]]
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
        records.append(make_record(path, mean, scale, ref=image_id, sd=sd, votes=tuple(counts)))  # type: ignore[arg-type]
    return Dataset(
        "ava",
        root,
        finish_records(records, problems, label_file),
        scale,
        authentic=True,
        official_split=_ava_split(root, {r.ref for r in records}),
    )


def _ava_split(root: Path, ids: set) -> dict | None:
    """AVA's official test list (``aesthetics_image_lists/generic_test.jpgl``, one image id per line), when present:
    those images are the test part, every other listed image the training part.
    """
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

"""Train/validation/test splits: by reference image (the default: no scene in two parts), by image, or the
release's official one; written to and read from split.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pynima.datasets.record import Dataset, Record
from pynima.errors import DatasetError

__all__ = ["VAL_CARVE", "apply_split", "dataset_split", "make_split", "read_split", "split_ratios"]

VAL_CARVE = 0.15  # share of the training references held out for validation when only train/test are given


def split_ratios(values: tuple[float, ...] | list[float], val_carve: float = VAL_CARVE) -> tuple[float, float, float]:
    """(train, val, test) fractions from 3 numbers, or from 2 (train, test: the field's 80/20), in which case
    validation is carved out of the training part (``val_carve`` of it), so the test part stays as given. With 3
    numbers the test fraction may be 0: no test part, for a final model trained on every reference.
    """
    given = tuple(float(v) for v in values)
    if (
        len(given) not in (2, 3)
        or min(given[:2]) <= 0
        or given[-1] < 0
        or (len(given) == 2 and given[1] == 0)
        or abs(sum(given) - 1) > 1e-6
    ):
        raise DatasetError(
            f"split ratios must be 2 (train test) or 3 (train val test) numbers summing to 1, all "
            f"positive but the test part of 3, which may be 0; got {' '.join(f'{v:g}' for v in given)}"
        )
    if len(given) == 2:
        return (given[0] * (1 - val_carve), given[0] * val_carve, given[1])
    return given  # type: ignore[return-value]


def make_split(
    records: list[Record], mode: str = "reference", ratios: tuple[float, float, float] = (0.7, 0.2, 0.1), seed: int = 0
) -> dict:
    """Seeded train/val/test split, as a JSON-ready dict of image file names per part.

    ``reference`` (default): the *reference images* are divided, so no scene is in two parts, as the field does.
    ``random``: the images themselves are divided: the reference implementation's protocol, in which the same scenes
    (at other distortions) appear in train and test; offered for comparison only.
    """
    if mode not in ("reference", "random"):
        raise ValueError(f"split mode must be 'reference' or 'random', got {mode!r}")
    units = sorted({r.ref for r in records}) if mode == "reference" else list(range(len(records)))
    with_test = ratios[2] > 0
    if len(units) < 2 + with_test:
        raise DatasetError(
            f"a {mode} split needs at least {2 + with_test} "
            f"{'references' if mode == 'reference' else 'images'}, got {len(units)}"
        )
    order = [units[i] for i in np.random.default_rng(seed).permutation(len(units))]
    n_val = max(1, round(ratios[1] * len(units)))
    n_train = (
        len(units) - n_val if not with_test else min(max(1, round(ratios[0] * len(units))), len(units) - n_val - 1)
    )
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    split: dict = {"mode": mode, "seed": seed, "ratios": list(ratios)}
    for name, chosen in parts.items():
        chosen = set(chosen)
        split[name] = [r.key for i, r in enumerate(records) if (r.ref if mode == "reference" else i) in chosen]
    return split


def read_split(path: str | Path) -> dict:
    """A split file (``split.json`` of a run, or any ``--split-file``): image names per part, checked; one
    DatasetError naming the file otherwise.
    """
    from pynima.files import read_json

    split = read_json(path)
    bad = (
        not isinstance(split, dict)
        or not all(isinstance(split.get(p), list) for p in ("train", "val", "test"))
        or not all(isinstance(n, str) for p in ("train", "val", "test") for n in split[p])
    )
    if bad:
        raise DatasetError(
            f"{path}: not a split file (a JSON object with lists of image names 'train', 'val' and 'test')"
        )
    return split


def apply_split(records: list[Record], split: dict, part: str) -> list[Record]:
    """The records of one part of a split (matched by ``Record.key``, case-insensitively)."""
    wanted = {n.lower() for n in split[part]}
    chosen = [r for r in records if r.key.lower() in wanted]
    if len(chosen) != len(wanted):
        raise DatasetError(f"split part {part!r} lists {len(wanted)} images, {len(chosen)} of them are in the dataset")
    return chosen


def dataset_split(dataset: Dataset, mode: str, ratios: tuple[float, float, float], seed: int) -> dict:
    """A split of ``dataset`` as ``pynima.datasets.splits.make_split`` writes it. ``mode`` "official": the release's own
    split (KonIQ's ``set`` column, AVA's test list); when it has no validation part, ``VAL_CARVE`` of its training
    images are drawn for validation with ``seed``; ``ratios`` do not apply. Other modes: ``make_split``.
    """
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

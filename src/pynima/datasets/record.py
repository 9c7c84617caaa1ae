"""What every reader gives: ``Record`` (one image with its labels and files), ``Scale`` (how a release's scores
map onto the model's 0-9), ``Dataset`` (the records, their scale and the release's official split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pynima.errors import DatasetError
from pynima.images import check_image
from pynima.scale import SCORE_RANGE

__all__ = ["Dataset", "Label", "MODEL_SCALE", "Record", "Scale", "TOP", "check_images", "problems_error"]


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
    """One image of a dataset, with its labels and the files on disk; every reader (``pynima.datasets``) gives these.

    Scores are on the model's scale, TID2013's 0-9 (the 10 bins are scores 0..9); a dataset on another scale is
    mapped onto it linearly (``pynima.datasets.record.Scale``) and its own number kept in ``score``.
    """

    path: Path
    mos: float  # on the model's 0-9 scale
    mos_std: float  # the uncertainty of the mean as TID2013 gives it, on the 0-9 scale; nan if the dataset has none
    ref: int | str  # the reference image (synthetic distortions), or the image itself (authentic): a split's unit
    kind: int | str  # distortion type (TID2013 1-24, LIVE "jpeg"...); 0 if the dataset has none
    level: int  # distortion level; 0 if the dataset has none
    reference: Path | None  # the reference image, when the dataset ships it
    score: float | None = None  # on the dataset's own scale (None: the same as mos)
    vote_sd: float | None = None  # std of the individual votes, on the 0-9 scale, when the dataset gives it
    votes: tuple[float, ...] | None = None  # vote counts per score level, worst level first (AVA, KonIQ)
    name: str | None = None  # unique within the dataset when file names are not (LIVE: "jpeg/img1.bmp")

    @property
    def dataset_score(self) -> float:
        """The score on the dataset's own scale: ``score``, else ``mos`` (TID2013's scale is the model's)."""
        return self.mos if self.score is None else self.score

    @property
    def key(self) -> str:
        """What split files and predictions.csv call this image: ``name``, else the file name."""
        return self.name or self.path.name


def problems_error(problems: list[str]) -> DatasetError:
    """One DatasetError for a list of problems: the first, and how many there are."""
    more = f" ({len(problems)} problems in all; the first is shown)" if len(problems) > 1 else ""
    return DatasetError(problems[0] + more)


def check_images(records: list[Record], threads: int = 4) -> None:
    """Check every record's image file from its header (``check_image``: readable, not truncated where that is
    cheap to see, within the size limits) before any training starts; one DatasetError for all problems.
    """
    from concurrent.futures import ThreadPoolExecutor

    def problem(r: Record) -> str | None:
        try:
            check_image(r.path)
        except DatasetError as e:
            return str(e)
        return None

    with ThreadPoolExecutor(threads) as pool:
        problems = [p for p in pool.map(problem, records) if p]
    if problems:
        raise problems_error(problems)


TOP = SCORE_RANGE[1]  # the model's scale is 0..TOP (its 10 bins are the scores 0..9, TID2013's scale)


@dataclass(frozen=True)
class Scale:
    """A dataset's score scale: the ``worst`` and ``best`` possible scores (a DMOS has worst > best), mapped linearly
    onto the model's 0-9 (worst -> 0, best -> 9). Scores beyond the ends map beyond 0-9; targets then put all their
    mass on the end bin (``pynima.model.labels.max_entropy``).
    """

    worst: float
    best: float
    kind: str = "MOS"  # "MOS" or "DMOS" (differential: lower is better)

    def to_model(self, x: float | np.ndarray) -> float | np.ndarray:
        """A score on this scale as on the model's 0-9 scale."""
        return (x - self.worst) / (self.best - self.worst) * TOP

    def from_model(self, y: float | np.ndarray) -> float | np.ndarray:
        """A score on the model's 0-9 scale as on this scale."""
        return self.worst + (self.best - self.worst) * np.asarray(y) / TOP

    def spread_to_model(self, s: float) -> float:
        """A std (or any spread) on this scale, on the model's."""
        return s * TOP / abs(self.best - self.worst)

    def describe(self) -> str:
        """The scale in words, for logs and reports: e.g. ``MOS 0-9, higher is better``."""
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
    official_split: dict | None = None  # as pynima.datasets.splits.make_split writes it, when the release has one
    type_names: dict = field(default_factory=dict)  # distortion type -> its name, for per-type results
    labels: str = "human opinion scores (the release's MOS or DMOS)"  # where the scores come from, for reports

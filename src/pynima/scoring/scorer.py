"""``Scorer``: scoring images with a trained model (``pynima.load(path).score(image_or_path)``, ``pynima predict``).

Three engines run the same network: ``torch`` (a ``pynima train`` checkpoint, eager PyTorch, channels_last),
``onnx`` (a file from ``pynima export``, ONNX Runtime; needs neither torch nor timm, so it starts fastest; ``pynima
train`` writes ``best.onnx`` next to ``best.ckpt``, and ``load`` picks it up, see there) and ``openvino`` (the same
file on OpenVINO). All get identical inputs from one NumPy preprocessing path, which evaluation uses as well:

* ``crops="centre"``: the single centre 224x224 crop at native resolution, as in training and evaluation;
* ``crops="grid"``: 224x224 crops covering the image (3 x 2 on TID2013's 512x384; at most 4 x 4 evenly spaced
  crops on large photos), the distribution averaged over them;
* ``crops="full"``: the whole image at native resolution in one pass (the backbone is fully convolutional and pools
  globally), so no part of the picture is left out; images of the same size share network calls. How far a shift of
  a few pixels moves each mode's score: bench/shift_stability.py and docs/results.md. An ONNX file must have been
  exported with a dynamic image size (``pynima export`` writes one).

Images are decoded in a thread pool (Pillow releases the GIL while decoding), one batch ahead of the model, under
the decoding policy of ``pynima.images`` (``load_rgb`` for files, ``to_rgb`` for arrays and PIL images). The network
gets at most MAX_CROPS_PER_PASS crops per call, so memory does not grow with batch size times crops. Images smaller than
the crop on a side (but at least ``pynima.images.MIN_SIDE``) are zero-padded and scored with a warning
(``Score.warning``); a file that cannot be scored is reported and the others are scored.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from pynima.config import DEFAULT_CROPS, crop_mode
from pynima.errors import NonFiniteError, PynimaError
from pynima.images import display_name, load_rgb, to_rgb
from pynima.scale import BINS, CROP
from pynima.scoring.engines import MAX_PIXELS_PER_PASS
from pynima.scoring.paths import walk_paths
from pynima.scoring.preprocess import check_crops, crops, normalize, padding_note

__all__ = ["DISTRIBUTION_TOLERANCE", "Score", "Scorer", "check_distributions"]

log = logging.getLogger(__name__)


DISTRIBUTION_TOLERANCE = 0.01  # how far a distribution may stray from non-negative and summing to 1 (bf16)


@dataclass(frozen=True)
class Score:
    """One image's predicted score: the mean and std of the distribution over 0-9, and a warning if any."""

    mean: float  # predicted mean opinion score, 0-9
    std: float
    distribution: tuple[float, ...]  # probability of each score 0..9
    warning: str | None = None  # e.g. the image was smaller than the crop and was padded


def check_distributions(p: np.ndarray, source: str) -> np.ndarray:
    """``p`` (N, 10) if every row is a probability distribution (finite, non-negative, summing to 1 within
    DISTRIBUTION_TOLERANCE, which bfloat16 rounding stays inside); else one error line naming ``source``. A diverged
    model (NaN weights) or an ONNX file without its softmax would otherwise give NaN or negative scores.
    """
    if not np.isfinite(p).all():
        raise NonFiniteError(
            f"{source}: the network's output is not finite (NaN or infinity): a diverged model; "
            f"retrain it with lower learning rates"
        )
    sums = p.sum(-1)
    if (
        p.ndim != 2
        or p.shape[1] != BINS
        or p.min() < -DISTRIBUTION_TOLERANCE
        or np.abs(sums - 1).max() > DISTRIBUTION_TOLERANCE
    ):
        raise PynimaError(
            f"{source}: the network's output is not a probability distribution over {BINS} bins "
            f"(values {p.min():.4g} to {p.max():.4g}, rows summing to {sums.min():.4g} to "
            f"{sums.max():.4g}); a model exported without its softmax?"
        )
    return p


class Scorer:
    """A trained NIMA model ready to score images. The network is tried on a grey image when the Scorer is made, and
    every output is checked (``check_distributions``): a model that does not give probabilities is refused, never
    scored.
    """

    def __init__(self, engine, crops: str = DEFAULT_CROPS, threads: int | None = None):
        check_crops(crops, engine)
        self.engine, self.crops = engine, crop_mode(crops)
        self.threads = threads or min(4, os.cpu_count() or 1)
        grey = normalize(np.full((1, CROP, CROP, 3), 128, np.uint8), engine.mean, engine.std)
        check_distributions(np.asarray(engine(grey), np.float64), getattr(engine, "source", "the network"))

    def _crops(self, image, max_value: float | None = None) -> tuple[np.ndarray, str | None]:
        """(n_crops, 224, 224, 3) uint8 crops of one image, and its warning, if any (see crops_of)."""
        notes: list[str] = []
        if isinstance(image, (str, os.PathLike)):
            name, rgb = image, load_rgb(image, notes)
        else:
            name, rgb = getattr(image, "filename", "") or "image array", to_rgb(image, max_value, notes)
        return self.crops_of(rgb, name, notes)

    def crops_of(self, rgb: np.ndarray, name: object, notes: Iterable[str] = ()) -> tuple[np.ndarray, str | None]:
        """(n_crops, 224, 224, 3) uint8 crops of a decoded (H, W, 3) uint8 image, and one warning line naming ``name``
        if decoding left ``notes`` (a multi-page TIFF, an ICC profile not applied) or the image had to be padded
        (pynima.scoring.cluster decodes files read from object storage itself, then comes here).
        """
        padded = padding_note(*rgb.shape[:2])
        problems = list(notes) + ([padded] if padded else [])
        return crops(rgb, self.crops), f"{display_name(name)}: {'; '.join(problems)}" if problems else None

    def inputs(self, image, max_value: float | None = None) -> np.ndarray:
        """Network input of one image (a path, an array or a PIL image, see ``score``): (n_crops, 3, 224, 224)."""
        x, warning = self._crops(image, max_value)
        if warning:
            log.warning(warning)
        return normalize(x, self.engine.mean, self.engine.std)

    def distributions(self, inputs: list[np.ndarray]) -> np.ndarray:
        """(N, 10) distributions, each averaged over its image's crops. ``inputs``: per image, its network input
        (float, from ``inputs``) or its uint8 crops (normalized here, a chunk at a time). The network gets at most
        MAX_PIXELS_PER_PASS pixels (MAX_CROPS_PER_PASS crops) per call, or one whole image if it is larger.
        """

        def run(x: np.ndarray) -> np.ndarray:
            if x.dtype == np.uint8:
                x = normalize(x, self.engine.mean, self.engine.std)
            return check_distributions(
                np.asarray(self.engine(x), np.float64), getattr(self.engine, "source", "the network")
            )

        # inputs of one spatial size share network calls (224 crops always; whole images when sizes repeat)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            by_size.setdefault(x.shape[1:], []).append(i)
        per_image: list[np.ndarray | None] = [None] * len(inputs)
        for members in by_size.values():
            every = np.concatenate([inputs[i] for i in members])
            step = max(
                1, MAX_PIXELS_PER_PASS // math.prod(every.shape[1:3] if every.dtype == np.uint8 else every.shape[2:])
            )
            p = np.concatenate([run(every[i : i + step]) for i in range(0, len(every), step)])
            for i, part in zip(members, np.split(p, np.cumsum([len(inputs[i]) for i in members])[:-1]), strict=True):
                per_image[i] = part.mean(0)
        return np.stack(per_image) if per_image else np.zeros((0, 10))

    def scores(self, inputs: list[np.ndarray], warnings: list[str | None] | None = None) -> list[Score]:
        """Scores of decoded images (``preprocess``'s crops), with a warning per image if given."""
        from pynima.model.labels import moments

        p = self.distributions(inputs)
        m, s = moments(p)
        warnings = warnings or [None] * len(p)
        return [
            Score(float(a), float(b), tuple(float(v) for v in row), w)
            for a, b, row, w in zip(m, s, p, warnings, strict=True)
        ]

    def score(self, image, max_value: float | None = None) -> Score:
        """Score one image: a path, a NumPy array or a PIL image, decoded under the policy of pynima.images.to_rgb.

        ``max_value``: the white level of a float or high-bit array (1.0 for floats in [0, 1], 4095 for 12-bit);
        uint8 and uint16 arrays need none. Raises DatasetError (one line) for an image it cannot score; an image
        smaller than the crop is padded, logged and flagged in ``Score.warning``.
        """
        x, warning = self._crops(image, max_value)
        if warning:
            log.warning(warning)
        return self.scores([x], [warning])[0]

    def __call__(self, images, max_value: float | None = None) -> list[Score]:
        """Score a batch in one go, as torchmetrics and pyiqa metrics are called.

        Args:
            images: a list or tuple of images (paths, NumPy arrays, PIL images, as ``score`` takes them), an
                (N, H, W, C) NumPy array, or an (N, C, H, W) torch tensor (the torch convention, as ``pynima.metric``
                takes it: uint8, or floats in [0, 1]).
            max_value: the white level of float or high-bit arrays (``score``); 1.0 for a float tensor if not given.

        Returns:
            One Score per image, in order. An image that cannot be scored raises a one-line DatasetError naming it
            (its path, or its position in the batch); ``score_paths`` instead reports and skips bad files.
        """
        if hasattr(images, "detach") and hasattr(images, "permute"):  # a torch tensor, without importing torch
            if images.ndim != 4:
                raise PynimaError(f"a tensor batch must be (N, C, H, W), got shape {tuple(images.shape)}")
            if max_value is None and images.is_floating_point():
                max_value = 1.0
            images = list(images.detach().cpu().permute(0, 2, 3, 1).numpy())
        elif isinstance(images, np.ndarray):
            if images.ndim != 4:
                raise PynimaError(
                    f"an array batch must be (N, H, W, C), got shape {images.shape}; score one image with Scorer.score"
                )
            images = list(images)
        elif isinstance(images, (str, os.PathLike)) or not isinstance(images, (list, tuple)):
            raise PynimaError(
                f"a batch is a list of images, an (N, H, W, C) array or an (N, C, H, W) tensor, got "
                f"{type(images).__name__}; score one image with Scorer.score"
            )
        inputs, warnings = [], []
        for i, image in enumerate(images):
            try:
                x, warning = self._crops(image, max_value)
            except PynimaError as e:
                if isinstance(image, (str, os.PathLike)):
                    raise
                raise type(e)(f"image {i} of the batch: {e}") from None
            if warning:
                log.warning(warning)
            inputs.append(x)
            warnings.append(warning)
        return self.scores(inputs, warnings) if inputs else []

    def prepare(self, path: Path) -> tuple[np.ndarray, str | None] | str:
        """An image's crops and warning, or the problem as a one-line message (for a thread pool)."""
        try:
            return self._crops(path)
        except PynimaError as e:
            return str(e)

    def score_paths(
        self, paths: Iterable[str | Path], batch_size: int = 16
    ) -> Iterator[tuple[Path, Score | None, str | None]]:
        """(path, score, None) per scored image, (path, None, problem) per file that cannot be scored, in input order.

        Folders are walked recursively for IMAGE_SUFFIXES (symlinked subfolders followed once, hidden names left
        out: see _walk_folder). A path that does not exist, a folder without images and each unreadable file give a
        (path, None, problem) row and the other images are still scored. Warnings (padded small images, multi-page
        TIFF, an ICC profile not applied) are in ``Score.warning``, not logged. Messages name files with
        ``display_name`` (escaped, one line); the paths yielded are the real ones.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise PynimaError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch_size = int(batch_size)
        # not a generator itself, so a bad batch_size raises here
        return self._score_paths(walk_paths(paths), batch_size)

    def _score_paths(
        self, it: Iterator[tuple[Path, str | None]], batch_size: int
    ) -> Iterator[tuple[Path, Score | None, str | None]]:
        with ThreadPoolExecutor(self.threads) as pool:

            def submit() -> tuple[list[Path], list]:
                chunk = list(islice(it, batch_size))
                return [p for p, _ in chunk], [problem or pool.submit(self.prepare, p) for p, problem in chunk]

            pending = submit()
            while pending[0]:
                chunk, futures = pending
                pending = submit()  # the next batch decodes while this one runs through the network
                loaded = [f if isinstance(f, str) else f.result() for f in futures]
                good = [x for x in loaded if not isinstance(x, str)]
                scores = iter(self.scores([x for x, _ in good], [w for _, w in good])) if good else iter(())
                for path, x in zip(chunk, loaded, strict=True):
                    yield (path, None, x) if isinstance(x, str) else (path, next(scores), None)

"""Scoring images with a trained checkpoint: ``pynima.load(ckpt).score(image_or_path)`` and ``pynima predict``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pynima.data import IMAGE_SUFFIXES, DatasetError, load_rgb


@dataclass(frozen=True)
class Score:
    mean: float  # predicted mean opinion score, 0-9
    std: float
    distribution: tuple[float, ...]  # probability of each score 0..9


def iter_image_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given, and image files under folders (recursively, sorted)."""
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if Path(f).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(root) / f
        else:
            yield p


class Scorer:
    """A trained NIMA model ready to score images (centre 224x224 crop at native resolution, as in evaluation)."""

    def __init__(self, module):
        from pynima.train import transforms

        self.module = module
        self.transform = transforms(module.hparams.backbone, train=False)

    def _tensor(self, image):
        from PIL import Image

        if isinstance(image, (str, Path)):
            image = load_rgb(image)
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        return self.transform(image.convert("RGB"))

    def _scores(self, batch) -> list[Score]:
        import torch

        from pynima.labels import moments

        with torch.inference_mode():
            p = self.module(torch.stack(batch)).numpy().astype(float)
        m, s = moments(p)
        return [Score(float(a), float(b), tuple(float(v) for v in row)) for a, b, row in zip(m, s, p)]

    def score(self, image) -> Score:
        """Score one image: a path, an (H, W, 3) uint8 array or a PIL image."""
        return self._scores([self._tensor(image)])[0]

    def score_paths(self, paths: Iterable[str | Path], batch_size: int = 16
                    ) -> Iterator[tuple[Path, Score | None, str | None]]:
        """(path, score, None) per readable image, (path, None, error) per unreadable one, in input order."""
        pending: list[tuple[Path, object]] = []

        def flush():
            tensors = [t for _, t in pending if not isinstance(t, str)]
            scores = iter(self._scores(tensors)) if tensors else iter(())
            for path, t in pending:
                yield (path, None, t) if isinstance(t, str) else (path, next(scores), None)
            pending.clear()

        for path in iter_image_paths(paths):
            try:
                pending.append((path, self._tensor(path)))
            except DatasetError as e:
                pending.append((path, str(e)))
            if len(pending) >= batch_size:
                yield from flush()
        yield from flush()


def load(ckpt: str | Path) -> Scorer:
    """A Scorer from a checkpoint written by ``pynima train``."""
    from pynima.evaluate import load_module

    return Scorer(load_module(ckpt))

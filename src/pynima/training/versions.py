"""The items training adds beside the labelled images: the clean reference of each distorted one
(``clean_anchors``), light versions made from it during training (``light_versions``, ``LightVersion``), and ladders
of unlabelled clean photos (``ladders``, ``LadderRung``). ``pynima.training.items`` puts them into batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pynima.datasets.record import Record
from pynima.errors import DatasetError
from pynima.images import IMAGE_SUFFIXES, image_files, load_rgb

__all__ = [
    "LADDER_KINDS",
    "LADDER_LIGHTEST",
    "LADDER_RUNGS",
    "LADDER_SHARE",
    "LADDER_STREAM",
    "LIGHT_KINDS",
    "LIGHT_STREAM",
    "LadderRung",
    "LightVersion",
    "clean_anchors",
    "clean_photo_label",
    "ladders",
    "light_versions",
    "mean_squared_error",
]


def clean_anchors(
    records: list[Record], label_margin: float | None = None, top: float = math.inf
) -> tuple[list[Record], list[int | None]]:
    """The items of the ranking term: ``records`` followed by one clean record per reference image the dataset
    ships, and for each of ``records`` the index of its clean record (None: the dataset has no reference file for it,
    or the image has no distortion level, as camera photos have not).

    ``label_margin`` None: the clean records have no label (MOS nan), only their place above their versions. A
    number: they are labelled at the top of their scene's observed scale, the highest MOS among the reference's
    versions in ``records`` plus ``label_margin``, with that version's std, capped at ``top`` (the scale's).
    TID2013 publishes no score for its references; this is the label their place implies.
    """
    items, clean = list(records), {}
    anchors: list[int | None] = []
    best: dict[str, Record] = {}
    for r in records:
        if r.level > 0 and (r.ref not in best or r.mos > best[r.ref].mos):
            best[r.ref] = r
    for r in records:
        if r.level > 0 and r.reference is not None and r.ref not in clean and r.reference.is_file():
            clean[r.ref] = len(items)
            best_version = best[r.ref]
            mos, std = (
                (math.nan, math.nan)
                if label_margin is None
                else (min(top, best_version.mos + label_margin), best_version.mos_std)
            )
            items.append(
                Record(
                    path=r.reference,
                    mos=mos,
                    mos_std=std,
                    ref=r.ref,
                    kind=0,
                    level=0,
                    reference=None,
                    name=f"reference:{r.reference.name}",
                )
            )
        anchors.append(clean.get(r.ref) if r.level > 0 else None)
    return items, anchors


@dataclass(frozen=True)
class LightVersion:
    """How to make a light version of one scene's clean reference: distortion ``kind`` (``pynima.synth.distortions``,
    TID2013's numbering) at a random strength up to ``strength`` (the type's level 1 in pynima's level table),
    labelled between the clean label and the scene's level 1 of that type in proportion to its damage: the share of
    level 1's mean squared error against the clean image that it has, capped at 1. Linear in MSE because, for small
    damage, what people notice grows with the energy of the change; the labels only need to keep clean above light
    above level 1 within one type, which any increasing map does.
    """

    kind: int
    strength: float
    level1_mse: float
    clean: tuple[float, float]  # the clean label (mos, std)
    level1: tuple[float, float]  # the scene's level-1 label of this type (mos, std)

    def make(self, image: np.ndarray, seed: int) -> tuple[np.ndarray, float, float]:
        """(the light version, its mos, its std) of ``image``, the clean reference as (H, W, 3) uint8; the same
        ``seed`` gives the same version.
        """
        from pynima.synth.distortions import distort

        image = np.ascontiguousarray(image)
        rng = np.random.default_rng([seed, self.kind, LIGHT_STREAM])
        strength = float(rng.uniform(0.0, self.strength))
        version = distort(image, self.kind, strength=strength, seed=int(rng.integers(2**31)))
        share = min(1.0, mean_squared_error(image, version) / self.level1_mse)
        (c_mos, c_std), (m_mos, m_std) = self.clean, self.level1
        return version, c_mos - share * (c_mos - m_mos), c_std + share * (m_std - c_std)


LIGHT_STREAM = 7  # the random stream of light versions, apart from the crop's (the same key drives both)


# TID2013 types whose strength 0 is the clean image and whose damage grows steadily with strength: the ones light
# versions are made of (noise of every kind, impulse noise, blur, JPEG)
LIGHT_KINDS = (1, 2, 3, 4, 5, 6, 8, 10, 19)


def mean_squared_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared difference of two images of one shape, on 0-255."""
    return float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))


def light_versions(
    records: list[Record], items: list[Record], anchors: list[int | None]
) -> tuple[list[Record], dict[int, LightVersion], list[tuple[int, ...]]]:
    """Light versions of the clean references ``clean_anchors`` added: damage lighter than TID2013's level 1
    (noise of std 1-5, JPEG at quality 60-100), which no labelled image shows, labelled between the clean label
    and level 1 (``LightVersion``). Needs TID2013's type numbering (``LIGHT_KINDS``) and labelled clean items.

    Returns ``items`` followed by one item per (scene, type) with a level-1 image in ``records``; their
    ``LightVersion`` by item index; and per record, the light items it is paired with in a batch (its own type's if
    it is one of LIGHT_KINDS, else every light item of its scene).
    """
    from pynima.synth.distortions import level_strengths

    strengths = level_strengths()
    out, light = list(items), {}
    by_scene: dict[object, dict[int, int]] = {}
    for i, r in enumerate(records):
        clean = anchors[i]
        if r.level != 1 or r.kind not in LIGHT_KINDS or clean is None or not math.isfinite(items[clean].mos):
            continue
        mse = mean_squared_error(load_rgb(items[clean].path), load_rgb(r.path))
        if mse <= 0:
            continue
        reference = items[clean]
        light[len(out)] = LightVersion(
            r.kind, strengths[r.kind][0], mse, (reference.mos, reference.mos_std), (r.mos, r.mos_std)
        )
        by_scene.setdefault(r.ref, {})[r.kind] = len(out)
        out.append(replace(reference, kind=r.kind, name=f"light:{r.kind}:{reference.path.name}"))
    lights = []
    for r in records:
        scene = by_scene.get(r.ref, {})
        lights.append((scene[r.kind],) if r.kind in scene else tuple(scene.values()))
    return out, light, lights


LADDER_RUNGS = 3  # per ladder: the clean photo, a lighter and a heavier version of one type
LADDER_SHARE = 0.25  # ladder images added to a training batch, as a share of its images (AnchorBatchSampler)
# the lightest damage of a ladder's lighter rung, in TID2013 levels: 0.05 is JPEG quality 98, so that the ladders
# reach JPEG 95 (level 0.12), the lightest version of bench/photo_ladder.py (its noise sigma 5 is level 0.87)
LADDER_LIGHTEST = 0.05
LADDER_STREAM = 11  # the random stream of ladders, apart from the crop's and the light versions'
# TID2013 types a ladder is made of: every type whose damage grows with its level (PSNR falls level by level), so all
# but local block-wise distortions (15: level 1 is the strongest), mean shift and contrast change (16, 17: signed)
LADDER_KINDS = tuple(k for k in range(1, 25) if k not in (15, 16, 17))


@dataclass(frozen=True)
class LadderRung:
    """Rung ``rung`` of a ladder made from one unlabelled clean photo (0: the photo itself). The ladder's key seed
    draws, for all its rungs alike, one of ``LADDER_KINDS`` and the rungs' damage in TID2013 levels: the lighter from
    ``LADDER_LIGHTEST`` to 2.5 for the types whose strength 0 is the clean image (``LIGHT_KINDS``), else in 1-2.5; the
    heavier 0.5-2.5 levels above it, capped at 5; a level's strength is interpolated linearly in ``level_strengths``
    (0 at level 0). Every type a model is trained to rate is on the ladders: with only some, the others were scored too
    high (docs/results.md). Every rung of one ladder shares the type and the random draws (``distort`` keeps them apart
    from the strength) and differs only in severity, which is all the ladder asks the model to see: a photo's clean
    version first, then its versions by damage. No human score is needed, so any clean photos can make ladders
    (RankIQA's idea, Liu et al. 2017).
    """

    rung: int

    @staticmethod
    def draw(seed: int) -> tuple[int, tuple[float, ...]]:
        """(TID2013 type, damage of every rung in levels) of the ladder keyed with ``seed``."""
        rng = np.random.default_rng([seed, LADDER_STREAM])
        kind = int(rng.choice(LADDER_KINDS))
        lighter = float(rng.uniform(LADDER_LIGHTEST if kind in LIGHT_KINDS else 1.0, 2.5))
        return kind, (0.0, lighter, min(5.0, lighter + float(rng.uniform(0.5, 2.5))))

    def make(self, image: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
        """(this rung's version of ``image``, a clean photo as (H, W, 3) uint8; its damage in levels)."""
        from pynima.synth.distortions import distort, level_strengths

        kind, levels = self.draw(seed)
        level = levels[self.rung]
        if level == 0:
            return image, 0.0
        strength = float(np.interp(level, np.arange(6), (0.0, *level_strengths()[kind])))
        return distort(np.ascontiguousarray(image), kind, strength=strength, seed=seed % 2**31), level


def ladders(
    folder: str | Path, first: int, clean: tuple[float, float] | None = None
) -> tuple[list[Record], dict[int, LadderRung]]:
    """The ladder items of the clean photos in ``folder``: ``LADDER_RUNGS`` records per photo, and their
    ``LadderRung`` by item index, items numbered from ``first``. The versions have no label (MOS nan); the photo
    itself has ``clean`` as its (MOS, std), or none either when it is None.

    Raises:
        DatasetError: the folder is missing or holds no images.
    """
    path = Path(folder)
    if not path.is_dir():
        raise DatasetError(f"{path}: ladder photo folder not found")
    photos = image_files(path)
    if not photos:
        raise DatasetError(f"{path}: no images for ladders ({', '.join(sorted(IMAGE_SUFFIXES))})")
    records, rungs = [], {}
    for p in photos:
        for rung in range(LADDER_RUNGS):
            rungs[first + len(records)] = LadderRung(rung)
            mos, std = clean if clean is not None and rung == 0 else (math.nan, math.nan)
            name = f"ladder:{rung}:{p.name}"
            records.append(Record(p, mos, std, f"ladder:{p.name}", kind=0, level=rung, reference=None, name=name))
    return records, rungs


def clean_photo_label(added: list[Record]) -> tuple[float, float] | None:
    """The (MOS, std) a ladder's clean photo is labelled with: the median of the labelled clean references among
    ``added`` (the items ``clean_anchors`` added), so that the photos sit where the clean references do and the
    ladder hinge cannot lift everything that looks clean above the scale the labels set (docs/results.md, stop 34).
    None: no labelled clean reference (``clean_label`` off, or a dataset without references), the photos unlabelled.
    """
    clean = [(r.mos, r.mos_std) for r in added if r.level == 0 and r.kind == 0 and math.isfinite(r.mos)]
    if not clean:
        return None
    mos, std = np.median(np.asarray(clean), axis=0)
    return float(mos), float(std)

"""What training reads: ``IQADataset`` (an image, its crop and its target distribution), its transforms, the
seeded ``EpochSampler``, ``AnchorBatchSampler`` (each batch joined by clean references, light versions and ladders:
``pynima.training.versions``), and ``make_loader``.

Transforms: training takes a random 224x224 crop at native resolution (TID2013 is 512x384; never squashed to a
square) and a horizontal flip; evaluation takes the single centre 224x224 crop, so it is deterministic.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from pynima.config import TrainConfig
from pynima.datasets.record import TOP, Record
from pynima.images import load_rgb
from pynima.model.labels import label_distributions
from pynima.model.network import normalization
from pynima.scale import CROP, SHIFT
from pynima.training.module import ANCHOR_SHARE
from pynima.training.versions import (
    LADDER_RUNGS,
    LADDER_SHARE,
    LADDER_STREAM,
    LadderRung,
    LightVersion,
    clean_anchors,
    clean_photo_label,
    ladders,
    light_versions,
)

__all__ = ["AnchorBatchSampler", "EpochSampler", "IQADataset", "make_loader", "one_label", "transforms"]

log = logging.getLogger(__name__)


def transforms(mean: tuple[float, ...], std: tuple[float, ...], train: bool, shift: bool = False):
    """torchvision transforms of a training item (random crop at native resolution, flip) or an evaluation item
    (the centre crop, as ``pynima predict`` takes it), normalized with the backbone's ``mean`` and ``std``.
    ``shift``: training crops of CROP + SHIFT pixels, which the shift-consistency term cuts into two shifted views
    (``pynima.training.module.shift_views``).
    """
    import torch
    from torchvision.transforms import v2

    size = CROP + SHIFT if shift else CROP
    crop = [v2.RandomCrop(size, pad_if_needed=True), v2.RandomHorizontalFlip()] if train else [v2.CenterCrop(CROP)]
    return v2.Compose([v2.ToImage(), *crop, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])


class IQADataset:
    """(image tensor, target distribution, MOS, index, unit, rung) per record; a plain map-style dataset for
    DataLoader. The index lets a distributed validation drop the items its sampler padded (``EpochSampler``); the unit
    (the key's seed, -1 without one) tells the ranking terms which items share a crop (``AnchorBatchSampler``). A
    clean reference added as a ranking anchor has MOS nan: it has no label, only its place above its distorted
    versions. The rung is nan except on a ladder's items (``LadderRung``): there it is the version's damage in
    TID2013 levels (0: the clean photo), and the MOS is nan.

    Items are decoded by ``load_rgb``, the decoding policy ``pynima predict`` uses. An item key may be an index or
    ``(index, seed)`` (from ``EpochSampler``): the seed then drives the random crop and flip, so the augmentation
    does not depend on which process or RNG state decodes the item. ``cache``: decode every image once into memory
    (uint8; TID2013's 3000 images take 1.8 GB), so an epoch only crops and flips; otherwise each item is decoded from
    disk.
    """

    def __init__(
        self,
        records: list[Record],
        targets: np.ndarray,
        transform,
        cache: bool = False,
        light: dict[int, LightVersion] | None = None,
        label: Callable[[float, float], np.ndarray] | None = None,
        ladder: dict[int, LadderRung] | None = None,
    ):
        import torch

        self.records, self.targets, self.transform = records, torch.from_numpy(targets), transform
        self.images = [self._decode(i) for i in range(len(records))] if cache else None
        self.light, self.label, self.ladder = light or {}, label, ladder or {}

    def _decode(self, i: int):
        import torch

        image = load_rgb(self.records[i].path)
        return torch.from_numpy(image if image.flags.writeable else image.copy()).permute(2, 0, 1)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | tuple[int, int]):
        import torch

        i, seed = key if isinstance(key, tuple) else (key, None)
        image = self.images[i] if self.images is not None else self._decode(i)
        target, mos = self.targets[i], self.records[i].mos
        if i in self.light:  # a light version: distorted now, from the key's seed, and labelled by its damage
            version, mos, std = self.light[i].make(image.permute(1, 2, 0).numpy(), 0 if seed is None else seed)
            image = torch.from_numpy(version if version.flags.writeable else version.copy()).permute(2, 0, 1)
            target = torch.from_numpy(self.label(mos, std))
        rung = math.nan
        if i in self.ladder:  # a ladder's rung: the photo, or a version of it made now from the key's seed
            version, rung = self.ladder[i].make(image.permute(1, 2, 0).numpy(), 0 if seed is None else seed)
            image = torch.from_numpy(version if version.flags.writeable else version.copy()).permute(2, 0, 1)
        if seed is None:
            x = self.transform(image)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                x = self.transform(image)
        unit = -1 if seed is None else seed  # the ranking term pairs items of one unit (same seed: same crop)
        return x, target, torch.tensor(mos, dtype=torch.float32), i, unit, torch.tensor(rung, dtype=torch.float32)


class EpochSampler:
    """A DataLoader sampler yielding ``(index, seed)``: the order (shuffled or not) and the augmentation seeds are a
    function of the run's seed and the epoch only (Lightning calls ``set_epoch``), so a run resumed at epoch E sees
    exactly the batches the uninterrupted run saw, whatever the RNG state or the loader workers. torch's RandomSampler
    draws from the global RNG instead, which a resumed process cannot reproduce. A plain iterable (DataLoader needs
    no Sampler subclass), so this module does not import torch.

    Distributed (``world`` > 1): every process draws the same epoch order and takes every ``world``-th item from
    position ``rank``, so the processes share each epoch without overlap and an item keeps its augmentation seed
    whatever the number of processes. ``pad``: repeat items from the start of the order until every process has the
    same count, as torch's DistributedSampler does: DDP and FSDP need the same number of steps, and of forward passes,
    on every process (validation drops the repeats by index after gathering); without it the shards differ by at
    most one item and none is seen twice.
    """

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1, pad: bool = True):
        if not 0 <= rank < world:
            raise ValueError(f"rank must be in [0, world), got rank {rank} of {world}")
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.rank, self.world, self.pad = rank, world, pad

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order to draw next (as DistributedSampler.set_epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.pad:
            return -(-self.n // self.world)
        return len(range(self.rank, self.n, self.world))

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        items = list(zip(order.tolist(), rng.integers(0, 2**62, self.n).tolist(), strict=True))
        if self.pad and self.world > 1 and items:
            items += (items * self.world)[: len(self) * self.world - self.n]
        return iter(items[self.rank :: self.world])


class AnchorBatchSampler:
    """A DataLoader batch sampler for the ranking term: the batches of ``sampler`` (an ``EpochSampler``: the same
    images, order and crops as training without it), each followed by the clean reference of its first ``per_batch``
    images that have one, keyed with that image's seed, so the pair gets the same crop and flip and differs only by
    the distortion; with ``lights`` (per image, the light versions it may be paired with: ``light_versions``), a
    light version of the same scene too, keyed alike (``IQADataset`` gives the seed as the item's unit;
    ``pynima.training.module.ranking_loss`` pairs by it). With ``ladder`` (the first ladder item, the number of
    photos, ladders per batch), each batch is then joined by the rungs of that many photos (``ladders``), chosen and
    keyed by the seed of the batch's first image, so a resumed epoch gets the same ladders.
    Lightning calls ``sampler.set_epoch``; distributed, ``sampler`` is the process's shard.
    """

    def __init__(
        self,
        sampler: EpochSampler,
        batch_size: int,
        anchors: list[int | None],
        per_batch: int,
        lights: list[tuple[int, ...]] | None = None,
        ladder: tuple[int, int, int] | None = None,
    ):
        self.sampler, self.batch_size, self.anchors, self.per_batch = sampler, batch_size, anchors, per_batch
        self.lights, self.ladder = lights, ladder

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self):
        keys = list(self.sampler)
        for start in range(0, len(keys), self.batch_size):
            batch = keys[start : start + self.batch_size]
            chosen = [(i, seed) for i, seed in batch if self.anchors[i] is not None][: self.per_batch]
            paired = [(self.anchors[i], seed) for i, seed in chosen]
            if self.lights is not None:  # and a light version of the same scene, cropped alike
                paired += [(self.lights[i][seed % len(self.lights[i])], seed) for i, seed in chosen if self.lights[i]]
            if self.ladder is not None and batch:
                first, photos, count = self.ladder
                rng = np.random.default_rng([batch[0][1], LADDER_STREAM])
                for photo in rng.choice(photos, min(count, photos), replace=False).tolist():
                    seed = int(rng.integers(2**62))
                    paired += [(first + photo * LADDER_RUNGS + rung, seed) for rung in range(LADDER_RUNGS)]
            yield batch + paired


def one_label(mos: float, std: float, labels: str, vote: str) -> np.ndarray:
    """The target distribution of one item labelled (``mos``, ``std``) as ``label_distributions`` makes it; a
    module-level function so that loader workers can unpickle it.
    """
    return label_distributions([Record(Path(), mos, std, 0, 0, 0, None)], labels, vote)[0]


def make_loader(
    records: list[Record],
    cfg: TrainConfig,
    train_mode: bool,
    rank: int = 0,
    world: int = 1,
    tid2013_types: bool = False,
) -> DataLoader:
    """The DataLoader of one part of a split: training transforms and a shuffled order when ``train_mode``. In a
    distributed run, process ``rank`` of ``world`` gets its shard (``EpochSampler``), padded to equal length;
    validation drops the repeats after gathering (``NIMAModule.on_validation_epoch_end``). ``tid2013_types``: the
    records number their distortion types as TID2013 does, which ``cfg.light_versions`` needs.
    """
    targets = label_distributions(records, cfg.labels, cfg.vote_std)
    workers = 0 if cfg.cache_images else cfg.num_workers
    common = {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "generator": torch.Generator().manual_seed(cfg.seed),
    }  # leaves the global RNG alone
    transform = transforms(*normalization(cfg.backbone), train_mode, shift=train_mode and cfg.shift_weight > 0)
    anchored = cfg.ranking_weight > 0 or cfg.clean_label
    laddered = bool(cfg.ladder_photos) and cfg.ladder_weight > 0  # as build_module weighs the term
    if not train_mode or not (anchored or laddered):
        ds = IQADataset(records, targets, transform, cache=cfg.cache_images)
        sampler = EpochSampler(len(ds), cfg.seed, train_mode, rank, world)
        return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, drop_last=False, **common)
    items, anchors, light, lights = list(records), [None] * len(records), {}, None
    if anchored:
        items, anchors, light, lights, targets = _with_clean_references(records, targets, cfg, tid2013_types)
    ladder, ladder_plan = {}, None
    if laddered:
        rungs, ladder = ladders(cfg.ladder_photos, len(items), clean_photo_label(items[len(records) :]))
        photos = len(rungs) // LADDER_RUNGS
        ladder_plan = (len(items), photos, max(1, round(cfg.batch_size * LADDER_SHARE / LADDER_RUNGS)))
        items += rungs
        added = np.zeros((len(rungs), targets.shape[1]), targets.dtype)
        labelled = [i for i, r in enumerate(rungs) if math.isfinite(r.mos)]
        if labelled:
            added[labelled] = label_distributions([rungs[i] for i in labelled], cfg.labels, cfg.vote_std)
        targets = np.concatenate([targets, added])
        log.info("ladders of %d unlabelled photos join training (%d per batch)", photos, ladder_plan[2])
    batches = AnchorBatchSampler(
        EpochSampler(len(records), cfg.seed, True, rank, world),
        cfg.batch_size,
        anchors,
        max(1, round(cfg.batch_size * ANCHOR_SHARE)) if anchored else 0,
        lights,
        ladder_plan,
    )
    label = functools.partial(one_label, labels=cfg.labels, vote=cfg.vote_std)
    dataset = IQADataset(items, targets, transform, cache=cfg.cache_images, light=light, label=label, ladder=ladder)
    return DataLoader(dataset, batch_sampler=batches, **common)


def _with_clean_references(records: list[Record], targets: np.ndarray, cfg: TrainConfig, tid2013_types: bool):
    """(items, anchors, light versions, lights per record, targets) with the clean references added (labelled with
    ``cfg.clean_label``) and their light versions (``cfg.light_versions``).
    """
    items, anchors = clean_anchors(records, cfg.ranking_margin if cfg.clean_label else None, TOP)
    if len(items) == len(records):  # a dataset without reference images (camera photos, a CSV)
        (log.warning if cfg.ranking_weight > 0 else log.info)(
            "the training part has no reference images of distorted versions: no clean images to add (EMD alone)"
        )
    added = (
        label_distributions(items[len(records) :], cfg.labels, cfg.vote_std)
        if cfg.clean_label
        else np.zeros((len(items) - len(records), targets.shape[1]), targets.dtype)
    )
    targets = np.concatenate([targets, added.astype(targets.dtype)])
    light, lights = {}, None
    if cfg.light_versions and not tid2013_types:
        log.warning("light versions need TID2013's distortion types (a tid2013-layout dataset): trained without them")
    elif cfg.light_versions:
        clean = len(items)
        items, light, lights = light_versions(records, items, anchors)
        targets = np.concatenate([targets, np.repeat(targets[clean - 1 : clean], len(items) - clean, 0)])
        log.info("light versions of %d (scene, type) pairs join training", len(light))
    return items, anchors, light, lights, targets

"""The LightningModule: EMD on the 10-bin distributions (plus the optional ranking terms), the Adam/SGD optimizers
with head and backbone learning rates, warm-up and the cosine schedule; ``build_module`` makes it from a TrainConfig.
"""

from __future__ import annotations

import functools
import math

import lightning as L
import numpy as np
import torch

from pynima.config import SCHEDULES, SGD_MOMENTUM, TrainConfig
from pynima.errors import NonFiniteError, PynimaError
from pynima.model.losses import emd
from pynima.model.network import create_model, mean_score
from pynima.scale import CROP, SHIFT

__all__ = [
    "ANCHOR_SHARE",
    "CLEAN",
    "SHIFT_SHARE",
    "NIMAModule",
    "build_module",
    "ladder_loss",
    "lr_factor",
    "ranking_loss",
    "shift_loss",
    "shift_views",
]


def lr_factor(step: int, warmup: int, total: int, schedule: str = "constant") -> float:
    """The learning rate of optimizer step ``step`` (0-based) as a fraction of the configured one: linear warm-up
    over ``warmup`` steps, then constant or a cosine decay reaching 0 after ``total`` steps (the epochs budget).
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(1, total - warmup)))
    return 1.0


CLEAN = 1e6  # the MOS a clean reference counts as in the ranking term: above every label


ANCHOR_SHARE = 0.25  # clean references added to a training batch, as a share of its images (AnchorBatchSampler)
SHIFT_SHARE = 0.25  # images of a training batch seen a second time, shifted, for the shift-consistency term
SPREAD_FLOOR = 0.1  # the smallest batch spread (std of predicted means, 0-9 scale) the shift term divides by


def shift_views(x: torch.Tensor, share: float, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """Two CROP x CROP views of a batch of (CROP + SHIFT)-pixel training crops, for the shift-consistency term.

    Args:
        x: (N, C, CROP + SHIFT, CROP + SHIFT) images (``pynima.training.items.transforms`` with ``shift=True``).
        share: the share of the batch seen a second time (the first ``k`` images, ``k`` at least 1).
        generator: draws the two offsets, each uniform in 0..SHIFT on both axes, one pair for the whole batch (the
            clean references and ladders that share a crop with an image keep sharing it).

    Returns:
        (N + k, C, CROP, CROP): every image at the first offset (what the EMD sees: still a uniformly placed crop of
        the picture), then its first ``k`` images at the second offset; and ``k``.
    """
    if x.shape[-2:] != (CROP + SHIFT, CROP + SHIFT):
        raise ValueError(f"shift_views needs {CROP + SHIFT}-pixel crops, got {tuple(x.shape[-2:])}")
    k = max(1, round(len(x) * share))
    (ay, ax, by, bx) = torch.randint(0, SHIFT + 1, (4,), generator=generator).tolist()
    first = x[..., ay : ay + CROP, ax : ax + CROP]
    second = x[:k, :, by : by + CROP, bx : bx + CROP]
    return torch.cat([first, second]), k


def shift_loss(first: torch.Tensor, second: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """The shift-consistency term: the mean |first - second| over the shifted pairs, in units of the batch's spread of
    predicted means (their standard deviation, at least SPREAD_FLOOR, not detached): a model cannot meet it by
    shrinking its scale, as it met the plain difference (docs/results.md, stop 37).

    Args:
        first: (k,) predicted means of the pairs' first views.
        second: (k,) predicted means of the same images, shifted.
        batch: (N,) predicted means of the whole batch (first views); with N = 1 there is no spread, and the
            difference is taken as it is.

    Returns:
        A scalar, 0 when the pairs agree.
    """
    spread = torch.clamp(batch.std(), min=SPREAD_FLOOR) if len(batch) > 1 else batch.new_tensor(1.0)
    return (first - second).abs().mean() / spread


def ranking_loss(mean: torch.Tensor, mos: torch.Tensor, unit: torch.Tensor, margin: float) -> torch.Tensor:
    """Pairwise hinge on predicted means (RankIQA, Liu et al. 2017): for every pair of one unit (items sharing a crop:
    a distorted image and its clean reference, ``pynima.training.items.AnchorBatchSampler``; unit -1: none) whose first
    item is better (the clean reference, MOS nan, above all; else the higher MOS), ``relu(gap - (mean_better -
    mean_worse))`` with ``gap`` = ``margin`` for the clean reference and min(``margin``, the MOS difference) between
    versions, averaged over pairs; 0 without pairs.
    """
    m = torch.nan_to_num(mos, nan=CLEAN)
    better = (m[:, None] > m[None, :]) & (unit[:, None] == unit[None, :]) & (unit[:, None] >= 0)
    if not better.any():
        return mean.sum() * 0
    gap = torch.clamp(m[:, None] - m[None, :], max=margin)
    return torch.relu(gap - (mean[:, None] - mean[None, :]))[better].mean()


def ladder_loss(mean: torch.Tensor, rung: torch.Tensor, unit: torch.Tensor, margin: float) -> torch.Tensor:
    """Pairwise hinge on predicted means within each ladder (``pynima.training.versions.LadderRung``: one unlabelled
    photo and its versions, cropped alike, one unit): for every pair of one unit whose first item is less damaged
    (``rung``, in TID2013 levels; nan: not on a ladder), ``relu(gap - (mean_lighter - mean_heavier))`` with ``gap`` =
    ``margin`` times the damage difference in levels, capped at one level's ``margin``; averaged over pairs, 0
    without pairs. The margin scales with the damage so that a barely touched version is not pushed a whole margin
    below its photo.
    """
    on = ~torch.isnan(rung) & (unit >= 0)
    better = (rung[:, None] < rung[None, :]) & (unit[:, None] == unit[None, :]) & on[:, None] & on[None, :]
    if not better.any():
        return mean.sum() * 0
    gap = margin * torch.clamp(torch.nan_to_num(rung[None, :] - rung[:, None]), max=1.0)
    return torch.relu(gap - (mean[:, None] - mean[None, :]))[better].mean()


class NIMAModule(L.LightningModule):
    """NIMA trained with the EMD loss; Adam (or SGD) with one learning rate for the head, another for the backbone.

    No defaults of its own: ``build_module`` makes it from a TrainConfig, the one place where defaults live (the
    learning rates resolved there from the recipe).
    """

    def __init__(
        self,
        *,
        backbone: str,
        weights: str | None,
        pretrained: bool,
        optimizer: str,
        lr_head: float,
        lr_base: float,
        momentum: float,
        labels: str,
        vote_std: str,
        freeze_stages: int,
        schedule: str,
        warmup_epochs: float,
        ranking_weight: float,
        ranking_margin: float,
        ladder_weight: float,
        shift_weight: float,
    ):
        # labels / vote_std only travel in the checkpoint, so evaluation rebuilds the same targets
        super().__init__()
        self.save_hyperparameters()
        # channels_last: faster CPU training steps than NCHW (bench/train_step.py, docs/performance.md)
        model = create_model(backbone, weights=weights, pretrained=pretrained, freeze_stages=freeze_stages)
        self.model = model.to(memory_format=torch.channels_last)
        self._val: list[np.ndarray] = []  # per validation batch: (index, EMD, predicted mean, MOS) of each image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 10) probabilities for a batch, channels-last for speed on CPUs."""
        return self.model(x.contiguous(memory_format=torch.channels_last))

    def training_step(self, batch, batch_idx):
        """EMD on the labelled items, plus the ranking and shift terms whose weights are set."""
        x, target, mos, _, unit, rung = batch
        rank_weight = self.hparams.get("ranking_weight", 0.0)
        ladder_weight = 0.0 if torch.isnan(rung).all() else self.hparams.get("ladder_weight", 0.0)  # no ladder here
        shift_weight = self.hparams.get("shift_weight", 0.0)
        if shift_weight:  # offsets from the step number, so a resumed run draws what the uninterrupted one drew
            x, k = shift_views(x, SHIFT_SHARE, torch.Generator().manual_seed(self.global_step))
        # the losses in fp32 also under bf16 autocast; the ranking terms compare the scores evaluation gives, not one
        # dropout draw of them
        if rank_weight or ladder_weight or shift_weight:
            p, deterministic = self.model.forward_with_deterministic(x.contiguous(memory_format=torch.channels_last))
            p, deterministic = p.float(), deterministic.float()
        else:
            p = deterministic = self(x).float()
        if shift_weight:  # the shifted second views: only in the shift term
            shifted, p, deterministic = mean_score(deterministic[-k:]), p[:-k], deterministic[:-k]
        means = mean_score(deterministic)  # the predicted means the ranking and shift terms compare
        labelled = ~torch.isnan(mos)  # clean references (ranking anchors) have no label
        loss = emd(p[labelled], target[labelled]) if labelled.any() else p.sum() * 0
        self.log("train_emd", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=int(labelled.sum()))
        margin = self.hparams.get("ranking_margin", 0.2)
        if rank_weight:
            rank = ranking_loss(means, mos, unit, margin)
            self.log("train_rank", rank, on_step=False, on_epoch=True, batch_size=len(x))
            loss = loss + rank_weight * rank
        if ladder_weight:
            ladder = ladder_loss(means, rung, unit, margin)
            self.log("train_ladder", ladder, on_step=False, on_epoch=True, batch_size=len(x))
            loss = loss + ladder_weight * ladder
        if shift_weight:
            shift = shift_loss(means[:k], shifted, means)
            self.log("train_shift", shift, on_step=False, on_epoch=True, batch_size=k)
            loss = loss + shift_weight * shift
        if not torch.isfinite(loss):
            raise NonFiniteError(
                f"training diverged: the loss is {loss.item()} at epoch {self.current_epoch}, "
                f"step {self.global_step} (the network's output is not finite); lower --lr-head and "
                f"--lr-base"
            )
        return loss

    def validation_step(self, batch, batch_idx):
        """Collect each validation image's EMD, predicted mean and MOS for the epoch's metrics."""
        x, target, mos, index, _, _ = batch
        p = self(x).float()
        per_image = torch.stack([emd(p, target, reduction="none"), mean_score(p), mos.to(p.dtype)], 1)
        rows = np.column_stack([index.cpu().numpy(), per_image.detach().cpu().numpy().astype(np.float64)])
        self._val.append(rows)

    def on_validation_epoch_end(self):
        """val_emd, val_srcc and val_plcc over the whole validation set: under DDP each process scored its own shard
        (EpochSampler, padded with a few repeats so all run the same passes), so the shards are gathered and each image
        kept once, by index; a mean of per-process SRCCs would not be the SRCC of the set. Every process then logs
        the same values (early stopping and checkpoints agree).
        """
        from scipy import stats

        rows = np.concatenate(self._val) if self._val else np.zeros((0, 4))
        self._val.clear()
        if self.trainer.world_size > 1:
            import torch.distributed as dist

            shards = [None] * self.trainer.world_size
            dist.all_gather_object(shards, rows)  # picklable rows: the sanity check's shards may differ in length
            rows = np.concatenate(shards)
            rows = rows[np.unique(rows[:, 0], return_index=True)[1]]  # the padding's repeats out
        if not len(rows):
            return
        per_image_emd, pred, mos = rows[:, 1:].T
        if not (np.isfinite(per_image_emd).all() and np.isfinite(pred).all()):
            raise NonFiniteError(
                f"training diverged: {int((~np.isfinite(per_image_emd)).sum())} of {len(rows)} "
                f"validation images get a non-finite prediction at epoch {self.current_epoch}; lower "
                f"--lr-head and --lr-base"
            )
        self.log("val_emd", float(per_image_emd.mean()), prog_bar=True)
        if len(pred) > 2 and np.ptp(pred) > 0:
            self.log("val_srcc", float(stats.spearmanr(pred, mos).statistic), prog_bar=True)
            self.log("val_plcc", float(stats.pearsonr(pred, mos).statistic))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the number of processes, which a resume must keep."""
        checkpoint["pynima_processes"] = self.trainer.world_size  # a resume must keep it (see train())

    def configure_optimizers(self):
        """Adam (or SGD) with the head's and backbone's learning rates, and the schedule."""
        hp = self.hparams
        groups = [
            {"params": self.model.head.parameters(), "lr": hp.lr_head},
            {"params": [p for p in self.model.backbone.parameters() if p.requires_grad], "lr": hp.lr_base},
        ]
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, momentum=hp.momentum)
        elif hp.optimizer == "adam":
            optimizer = torch.optim.Adam(groups)
        else:
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {hp.optimizer!r}")
        schedule, warmup_epochs = hp.get("schedule", "constant"), hp.get("warmup_epochs", 0.0)
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
        if schedule == "constant" and not warmup_epochs:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)  # the epochs budget, in optimizer steps
        warmup = round(warmup_epochs * total / max(1, self.trainer.max_epochs))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(lr_factor, warmup=warmup, total=total, schedule=schedule)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def build_module(cfg: TrainConfig, pretrained: bool = True) -> NIMAModule:
    """The NIMAModule a config trains: ImageNet weights, or with ``cfg.init`` the weights of a pynima checkpoint
    (backbone and head; fine-tuning). ``pretrained=False``: no weights loaded (a resumed run takes its checkpoint's).
    """
    from pynima.model.network import load_checkpoint

    lr_head, lr_base = cfg.learning_rates()
    module = NIMAModule(
        backbone=cfg.backbone,
        weights=cfg.weights if pretrained else None,
        pretrained=pretrained and cfg.init is None,
        optimizer=cfg.optimizer,
        lr_head=lr_head,
        lr_base=lr_base,
        momentum=SGD_MOMENTUM,
        labels=cfg.labels,
        vote_std=cfg.vote_std,
        freeze_stages=cfg.freeze_stages,
        schedule=cfg.schedule,
        warmup_epochs=cfg.warmup_epochs,
        ranking_weight=cfg.ranking_weight,
        ranking_margin=cfg.ranking_margin,
        ladder_weight=cfg.ladder_weight if cfg.ladder_photos else 0.0,
        shift_weight=cfg.shift_weight,
    )
    if cfg.init and pretrained:
        source, hp = load_checkpoint(cfg.init)
        if hp["backbone"] != cfg.backbone:
            raise PynimaError(
                f"{cfg.init}: a {hp['backbone']} model; --init needs the same --backbone (got {cfg.backbone})"
            )
        module.model.load_state_dict(source.state_dict())
    return module

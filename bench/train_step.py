"""Training speed: pynima's training step against a baseline written the way the reference implementation works.

    python bench/train_step.py [--steps 12] [--batch 16] [--backbone mobilenet_v2] [--repeats 3]

Both train on the same folder of 512x384 BMPs (TID2013's format, made from the photos pynima synth embeds), batch
16, Adam, EMD loss, data loading included (DataLoader with 2 workers for both), in one run:

* baseline: torchvision ``mobilenet_v2`` with NIMA's head, NCHW fp32; images resized to 256 then randomly cropped to
  224 and flipped (the reference implementation's transform);
* pynima: ``pynima train``'s own loop: ``NIMAModule``, its transforms and optimizers, run by the Lightning Trainer
  that ``pynima train`` uses (``pynima.training.train.make_trainer``: deterministic, channels_last). Variants: as at the
  start of the speed work (NCHW, and PyTorch's NaN-filling of new tensors that ``deterministic=True`` turns on), with
  channels_last but still NaN-filling, the default now, and with bf16 autocast (``--precision bf16-mixed``), the
  decoded-image cache (``--cache-images``) and the stem and first two stages frozen (``--freeze-stages 2``).

Prints images/second (median of --repeats timed runs of --steps steps, each after 2 warm-up steps) and the ratio to
the baseline.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from throughput import baseline_model, make_jpegs
from torch.utils.data import DataLoader


def make_bmps(folder: Path, n: int) -> list[Path]:
    from PIL import Image

    out = []
    for p in make_jpegs(folder, n):
        bmp = p.with_suffix(".bmp")
        Image.open(p).save(bmp)
        p.unlink()
        out.append(bmp)
    return out


class _Folder:
    """The baseline's dataset, written as the reference implementation reads images (PIL, torchvision transforms);
    pynima's side uses the package's own loader (``pynima.training.items.make_loader``).
    """

    def __init__(self, paths, transform):
        self.paths, self.transform = paths, transform
        rng = np.random.default_rng(0)
        self.targets = torch.softmax(torch.from_numpy(rng.normal(size=(len(paths), 10)).astype(np.float32)), 1)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            image = im.convert("RGB")
        return self.transform(image), self.targets[i], torch.tensor(5.0)


def timed(step, loader, steps: int) -> float:
    it = iter(_forever(loader))
    for _ in range(2):
        step(next(it))
    t0 = time.perf_counter()
    n = 0
    for _ in range(steps):
        batch = next(it)
        step(batch)
        n += len(batch[0])
    return n / (time.perf_counter() - t0)


def _forever(loader):
    while True:
        yield from loader


def baseline(paths, batch: int, steps: int) -> float:
    from torchvision import transforms

    from pynima.model.losses import emd

    model = baseline_model().train()
    tf = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.RandomCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    opt = torch.optim.Adam(
        [{"params": model.features.parameters(), "lr": 1.4e-4}, {"params": model.classifier.parameters(), "lr": 3.7e-5}]
    )
    loader = DataLoader(_Folder(paths, tf), batch_size=batch, shuffle=True, num_workers=2, persistent_workers=True)

    def step(b):
        x, t, _ = b
        opt.zero_grad()
        emd(model(x), t).backward()
        opt.step()

    return timed(step, loader, steps)


class _Clock:
    """A Lightning callback's clock: images per second over the training batches after the first ``warmup``."""

    def __init__(self, warmup: int = 2):
        import lightning as L

        clock, self.seen, self.n = self, 0, 0

        class Callback(L.Callback):
            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if clock.seen == warmup:
                    clock.t0 = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                clock.seen += 1
                if clock.seen > warmup:
                    clock.n += len(batch[0])
                    clock.t1 = time.perf_counter()

        self.callback = Callback()

    def rate(self) -> float:
        return self.n / (self.t1 - self.t0)


def pynima_step(
    paths,
    batch: int,
    steps: int,
    backbone: str,
    bf16: bool = False,
    channels_last: bool = True,
    cache: bool = False,
    freeze: int = 0,
    fill: bool = False,
) -> float:
    """``steps`` timed training steps of ``pynima train``'s own loop: its LightningModule, dataset, transforms and
    Lightning Trainer (``pynima.training.train.make_trainer``), stopped after 2 + ``steps`` batches.
    """
    from pynima.config import TrainConfig
    from pynima.datasets.record import Record
    from pynima.training.items import make_loader
    from pynima.training.module import build_module
    from pynima.training.train import make_trainer

    cfg = TrainConfig(
        data=str(paths[0].parent),
        backbone=backbone,
        batch_size=batch,
        num_workers=2,
        cache_images=cache,
        freeze_stages=freeze,
    )  # with the cache, no loader workers
    module = build_module(cfg, pretrained=False)  # the default recipe's module, as pynima train builds it
    if not channels_last:  # what pynima did before: plain NCHW
        module.model = module.model.to(memory_format=torch.contiguous_format)
        module.forward = module.model.forward
    mos = np.random.default_rng(0).uniform(1, 8, len(paths))
    records = [Record(p, float(m), 0.15, 1, 1, 1, None) for p, m in zip(paths, mos, strict=True)]
    loader = make_loader(records, cfg, train_mode=True)
    clock = _Clock()
    trainer = make_trainer(
        "bf16-mixed" if bf16 else "32",
        max_epochs=-1,
        max_steps=steps + 2,
        callbacks=[clock.callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
    )
    torch.utils.deterministic.fill_uninitialized_memory = fill  # True: as before pynima turned it off
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, loader)
    torch.utils.deterministic.fill_uninitialized_memory = False
    return clock.rate()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backbone", default="mobilenet_v2")
    args = ap.parse_args()
    import lightning  # noqa: F401 - sets its logger to INFO on import, so it must come before the next line

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available" lines per variant
    paths = make_bmps(Path(tempfile.mkdtemp(prefix="pynima-train-step-")), args.images)
    print(
        f"{len(paths)} BMPs 512x384; batch {args.batch}; {args.steps} timed steps; backbone {args.backbone}; "
        f"{torch.get_num_threads()} threads"
    )

    def pynima(**kw):
        return lambda: pynima_step(paths, args.batch, args.steps, args.backbone, **kw)

    runs = {
        "baseline": lambda: baseline(paths, args.batch, args.steps),
        "pynima-nchw-fill": pynima(channels_last=False, fill=True),  # as at the start of the speed work
        "pynima-fill": pynima(fill=True),  # channels_last, NaN-filling still on
        "pynima": pynima(),  # the default now
        "pynima-bf16": pynima(bf16=True),
        "pynima-cache": pynima(cache=True),
        "pynima-cache-bf16": pynima(bf16=True, cache=True),
        "pynima-freeze2": pynima(freeze=2),
        "pynima-cache-bf16-freeze2": pynima(bf16=True, cache=True, freeze=2),
    }
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):  # interleaved, so drift in machine speed hits every variant alike
        for k, run in runs.items():
            rates[k].append(run())
    base = statistics.median(rates["baseline"])
    print(f"\n{'variant':26s} {'img/s':>7s} {'x baseline':>10s}   (median of {args.repeats}; all runs: img/s)")
    for k, v in rates.items():
        print(
            f"{k:26s} {statistics.median(v):7.1f} {statistics.median(v) / base:10.2f}   "
            + " ".join(f"{x:.1f}" for x in v)
        )


if __name__ == "__main__":
    main()

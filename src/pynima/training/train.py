"""``train()``, which ``pynima train`` calls: the run folder, the Lightning Trainer (one process or distributed:
docs/distributed.md) with its checkpoints, early stopping and logging, the test part scored at the end, the ONNX
export. The loop, checkpoints, early stopping, logging and progress bar come from Lightning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from pynima.config import TrainConfig
from pynima.datasets.record import check_images
from pynima.datasets.registry import read_config_dataset
from pynima.datasets.splits import apply_split, dataset_split, read_split
from pynima.errors import DatasetError, PynimaError
from pynima.evaluation.plots import loss_curve
from pynima.files import (
    RUN_MARKER,
    atomic_path,
    folder_lock,
    read_csv,
    remove_stale_temporaries,
    write_json,
    write_text,
)
from pynima.model.network import read_checkpoint
from pynima.training.items import (
    make_loader,
)
from pynima.training.module import build_module

__all__ = [
    "GlobalRNG",
    "RUN_FILES",
    "distributed_trainer",
    "make_trainer",
    "process_rank",
    "train",
    "unwrap_loader_error",
]

log = logging.getLogger(__name__)


def _export(ckpt: Path) -> None:
    """best.onnx for best.ckpt; a network the exporter cannot handle costs only the fast start, not the run."""
    import io

    from pynima.scoring.export import export_onnx

    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(ckpt, ckpt.with_suffix(".onnx"))
    except Exception as e:  # noqa: BLE001 - any exporter failure is reported, and the run stays valid
        log.warning(
            "ONNX export of %s skipped (%s: %s); pynima predict will use PyTorch",
            ckpt,
            type(e).__name__,
            str(e).splitlines()[0][:200],
        )


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, through a temporary sibling: a kill mid-write never leaves half a last.ckpt
    for ``--resume`` to trip over.
    """

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


class _Interruption(L.Callback):
    """Keeps the Ctrl-C (KeyboardInterrupt) or SIGTERM (``Terminated``) that stopped ``fit``: Lightning answers them
    with ``sys.exit(1)``, which would hide from the CLI that the run was interrupted (exit 130 or 143).
    """

    def __init__(self):
        self.exception: KeyboardInterrupt | None = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.exception = exception


class GlobalRNG(L.Callback):
    """Keeps torch's global RNG state (the head's dropout draws from it) in every checkpoint and puts it back at the
    start of the first epoch after ``--resume``. Between a checkpoint and the next epoch nothing else draws from it
    (the samplers, augmentation and loaders have seeds of their own), so the resumed run continues exactly.
    """

    def __init__(self, seed: int = 0):
        self._pending: dict | None = None
        self.seed = seed

    def state_dict(self) -> dict:
        """The random generators' state, saved in the checkpoint."""
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():  # dropout on a GPU draws from its own generators
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Keep a checkpoint's generator state until training starts."""
        self._pending = state_dict

    def on_train_start(self, trainer, pl_module) -> None:
        """Give each DDP process its own random stream."""
        # here, not before fit: Lightning's DDP setup re-seeds every process from the run's seed (reset_seed)
        if trainer.world_size > 1 and self._pending is None:
            _seed_process(self.seed, trainer.global_rank)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Restore the checkpoint's random generators at the first epoch of a resume."""
        if self._pending is not None:
            torch.set_rng_state(self._pending["torch"])
            if "cuda" in self._pending and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(self._pending["cuda"])
            self._pending = None
            if trainer.world_size > 1:  # the checkpoint holds rank 0's state: give each process a stream of its own
                _seed_process(int(torch.randint(0, 2**62, ())), trainer.global_rank)


def _seed_process(seed: int, rank: int) -> None:
    """Seed torch's global RNG (dropout) for process ``rank`` of a distributed run, so no two draw the same masks."""
    torch.manual_seed(int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1))


def make_trainer(
    precision: str = "32",
    accelerator: str = "auto",
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    **options,
) -> L.Trainer:
    """The Lightning Trainer pynima trains with (``bench/train_step.py`` times this one too): seeded runs repeat
    exactly (``deterministic=True``), checkpoints are written atomically. ``accelerator``, ``devices``, ``num_nodes``
    and ``strategy`` are Lightning's: with more than one process the strategy (ddp by default) launches the others,
    or joins those that torchrun or SLURM started (docs/distributed.md). The loaders shard themselves
    (``make_loader``), so Lightning's DistributedSampler is off.
    """
    # Lightning's banner (accelerators found, a tip) comes at construction, which train() does before it checks its
    # inputs (the rank decides which process writes): kept out, so that an input error stays one line
    banner = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level, _ = banner.level, banner.setLevel(logging.WARNING)
    try:
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=devices,
            num_nodes=num_nodes,
            strategy=strategy,
            deterministic=True,
            precision=precision,
            log_every_n_steps=1,
            enable_model_summary=False,
            use_distributed_sampler=False,
            plugins=[_AtomicCheckpointIO()],
            **options,
        )
    finally:
        banner.setLevel(level)
    if trainer.strategy.root_device.type == "cuda":
        # some CUDA kernels the backbones use (adaptive average pooling's backward) have no deterministic version:
        # warn about them instead of failing the run
        torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic=True also turns on fill_uninitialized_memory, which writes NaN into every new tensor before the
    # op that fills it: one extra pass over each activation (rows pynima-fill and pynima of bench/train_step.py).
    # Every op here writes its whole output: a benchmark split retrained without it matched its earlier run value
    # for value (docs/performance.md), and test_same_seed_same_run checks that seeded runs still repeat.
    torch.utils.deterministic.fill_uninitialized_memory = False
    return trainer


# what train() (and pynima report, and older pynima versions: best-v1.ckpt) writes into a run folder, as glob
# patterns; --overwrite removes exactly these, and nothing else
RUN_FILES = (
    "config.json",
    "split.json",
    "metrics.csv",
    "hparams.yaml",
    "best.ckpt",
    "last.ckpt",
    "best.onnx",
    "train.json",
    "loss_curve.png",
    "metrics.json",
    "predictions.csv",
    "scatter.png",
    "report.html",
    "report.md",
    "best-v*.ckpt",
    "last-v*.ckpt",
    "best-v*.onnx",
)


def _prepare_run_folder(out: Path, split_file: Path | None, overwrite: bool) -> None:
    """Refuse to mix a new run into an old one: an existing run is replaced only with ``overwrite``, and only if the
    folder carries pynima's run marker (a user's own config.json or report.html is never pynima's to delete).
    """
    given = split_file.resolve() if split_file else None
    old = sorted({p for pattern in RUN_FILES for p in out.glob(pattern) if p.resolve() != given})
    names = ", ".join(p.name for p in old[:3]) + (", ..." if len(old) > 3 else "")
    if old and not (out / RUN_MARKER).is_file():
        raise PynimaError(
            f"{out}: holds files pynima did not write as a run ({names}); pynima train writes into an "
            f"empty folder or its own run only: choose another --out"
        )
    if old and not overwrite:
        raise PynimaError(
            f"{out}: holds a run already ({names}); continue it with --resume {out}, replace it with "
            f"--overwrite, or choose another --out"
        )
    for p in old:
        p.unlink()
    write_text(out / RUN_MARKER, "a pynima train run: pynima train --overwrite may replace its files\n")


def unwrap_loader_error(e: Exception) -> PynimaError:
    """A DatasetError raised in a DataLoader worker comes back with the worker's traceback in its message; keep the
    line that names the file.
    """
    lines = [ln for ln in str(e).splitlines() if "DatasetError: " in ln]
    return DatasetError(lines[-1].split("DatasetError: ", 1)[1] if lines else str(e).strip().splitlines()[-1])


def distributed_trainer(cfg: TrainConfig, **options) -> L.Trainer:
    """``make_trainer`` with the run's precision and its accelerator, devices, nodes and strategy; a combination
    Lightning refuses (fsdp on CPU, a GPU on a machine without one) is one PynimaError line.
    """
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    where = (
        f"--accelerator {cfg.accelerator} --devices {cfg.devices} --num-nodes {cfg.num_nodes} --strategy {cfg.strategy}"
    )
    try:
        trainer = make_trainer(cfg.precision, cfg.accelerator, cfg.devices, cfg.num_nodes, cfg.strategy, **options)
        environment = getattr(trainer.strategy, "cluster_environment", None)
        if environment is not None:  # torchrun's and SLURM's process counts, checked now rather than inside fit
            environment.validate_settings(num_devices=trainer.num_devices, num_nodes=trainer.num_nodes)
    except (MisconfigurationException, ValueError) as e:
        raise PynimaError(f"{where}: {' '.join(str(e).split())}") from None
    started = int(os.environ.get("WORLD_SIZE", 1)) if "TORCHELASTIC_RUN_ID" in os.environ else 1
    if trainer.world_size == 1 and (started > 1 or int(os.environ.get("SLURM_PROCID", 0) or 0) > 0):
        # every process would take itself for rank 0 and train alone into the same folder
        raise PynimaError(
            f"{where}: this process is one of several that torchrun or srun started; give --devices "
            f"(processes per machine) and --num-nodes so that they make one run"
        )
    return trainer


def process_rank(cfg: TrainConfig) -> int:
    """This process's global rank in the distributed run ``cfg`` asks for (0 alone), as Lightning reads it from the
    launcher's environment (its own, torchrun, SLURM). Only rank 0 writes files and prints; the others train.
    """
    return distributed_trainer(cfg, logger=False, enable_progress_bar=False, enable_checkpointing=False).global_rank


def _trainer(cfg: TrainConfig, progress: bool, callbacks: list | tuple):
    """The Trainer of a run, with the callbacks ``train`` reads back: best/last checkpoints, the CSV log and the
    interruption (Ctrl-C, SIGTERM) catcher.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    out = Path(cfg.out)
    ckpt = ModelCheckpoint(
        dirpath=out, filename="best", monitor="val_emd", mode="min", save_last=True, enable_version_counter=False
    )
    logger = CSVLogger(out, name="", version="", flush_logs_every_n_steps=1)
    interruption = _Interruption()
    trainer = distributed_trainer(
        cfg,
        max_epochs=cfg.epochs,
        logger=logger,
        enable_progress_bar=progress,
        callbacks=[
            EarlyStopping(monitor="val_emd", mode="min", patience=cfg.patience),
            ckpt,
            GlobalRNG(cfg.seed),
            interruption,
            *callbacks,
        ],
    )
    return trainer, ckpt, logger, interruption


def _read_parts(cfg: TrainConfig, split: dict | None, resume_from: Path | None, test: bool):
    """The dataset, the split (a resumed run's own; else the one given, ``cfg.split_file``'s or a new one) and its
    parts, every image of the parts used checked to open first.
    """
    dataset = read_config_dataset(cfg)
    if resume_from:
        split = read_split(resume_from.parent / "split.json")
    elif split is None:
        split = (
            read_split(cfg.split_file) if cfg.split_file else dataset_split(dataset, cfg.split, cfg.ratios, cfg.seed)
        )
    parts = {part: apply_split(dataset.records, split, part) for part in ("train", "val", "test")}
    check_images([r for part in (("train", "val", "test") if test else ("train", "val")) for r in parts[part]])
    return dataset, split, parts


def _resumed_epoch(resume_from: Path | None, world: int, cfg: TrainConfig, will_train: bool) -> int | None:
    """The epoch of the checkpoint a run resumes from, after checking that it can be resumed with ``world``
    processes; None for a new run.
    """
    if resume_from is None:
        return None
    saved = read_checkpoint(resume_from)
    epoch = saved.get("epoch")
    if not isinstance(epoch, int):
        raise PynimaError(f"{resume_from}: not a Lightning checkpoint of pynima train (no epoch)")
    trained_with = saved.get("pynima_processes", 1)
    if will_train and trained_with != world and (cfg.schedule != "constant" or cfg.warmup_epochs):
        # the schedule counts optimizer steps, and a step covers world x batch images: another count would replay
        # it at the wrong pace (a cosine reaching 0 early, or starting over)
        raise PynimaError(
            f"{resume_from}: trained by {trained_with} process(es); resume it with the same number (--devices x "
            f"--num-nodes), not {world}, as its {cfg.schedule} learning-rate schedule counts optimizer steps"
        )
    return epoch


def _restore_log(out: Path, logger, epoch: int) -> None:
    """A resumed run's metrics.csv rows up to the checkpoint's epoch: Lightning's CSV logger starts a new file."""
    history = [r for r in read_csv(out / "metrics.csv") if r.get("epoch") and int(r["epoch"]) <= epoch]
    if history:
        with warnings.catch_warnings():  # "previous log files will be deleted": they are the history
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            logger.experiment.metrics = history
            logger.experiment.metrics_keys = sorted(set().union(*history))
            logger.experiment.save()


def _fit(trainer: L.Trainer, module, loaders: tuple, resume_from: Path | None, interruption: _Interruption) -> None:
    """``trainer.fit`` with the warnings pynima means to cause silenced, the progress bar on stderr, and a loader's
    or a signal's exception raised as itself.
    """
    with warnings.catch_warnings():
        # the run directory holds split.json and config.json before Lightning writes to it; that is intended
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        # frozen stages (--freeze-stages) stay in eval mode on purpose
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start of training.*")
        # validation metrics are logged from the gathered set, the same value on every process
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
        try:
            # Lightning's progress bar writes to stdout; results alone go there (the CLI prints them)
            with contextlib.redirect_stdout(sys.stderr):
                trainer.fit(module, *loaders, ckpt_path=resume_from, weights_only=True)
        except DatasetError as e:
            raise unwrap_loader_error(e) from None
        except SystemExit:
            if interruption.exception is not None:  # Ctrl-C or SIGTERM, not a finished run
                raise interruption.exception from None
            raise


def _test(cfg: TrainConfig, out: Path, split: dict) -> None:
    """The best checkpoint scored on the run's test part, into the run folder (a resumed run evaluates again)."""
    from pynima.evaluation.evaluate import evaluate_checkpoint

    evaluate_checkpoint(
        out / "best.ckpt",
        cfg.data,
        out,
        split=split,
        part="test",
        crops=cfg.test_crops,
        allow_out_of_range=cfg.allow_out_of_range,
        format=cfg.format,
        scale=cfg.scale,
        replace=True,
        undefined_ok=True,
    )


def _cpu_seconds() -> float | None:
    """User + system CPU seconds of this process and of its children that have ended (the data loaders' workers);
    None where the platform has no ``resource`` module; under DDP, rank 0's. Wall seconds alone do not compare runs
    that shared cores.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    used = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return sum(u.ru_utime + u.ru_stime for u in used)


def train(
    cfg: TrainConfig,
    progress: bool = True,
    test: bool = True,
    overwrite: bool = False,
    resume: bool = False,
    callbacks: list | tuple = (),
    split: dict | None = None,
) -> Path:
    """Train, keep best/last checkpoints, then evaluate the best one on the test split.

    Distributed (``cfg.devices`` x ``cfg.num_nodes`` > 1): every process runs this function. Rank 0 alone checks and
    writes the run folder (lock, config, split, checkpoints, logs, ONNX export, test evaluation); the other ranks
    read only the dataset and, when resuming, the run's split and checkpoint, and return after training.

    Args:
        cfg: the run's configuration; ``cfg.out`` is the run folder.
        progress: show Lightning's progress bar (on stderr).
        test: score the test part at the end; False in a learning-rate search, which must never see the test images.
        overwrite: replace a run already in ``cfg.out`` (refused otherwise).
        resume: continue the run in ``cfg.out`` from its last.ckpt (optimizer, epoch, early stopping and RNG states;
            the same final metrics as an uninterrupted run).
        callbacks: extra Lightning callbacks.
        split: the split to train on (default: ``cfg.split_file``'s, or a new one from ``cfg.split``, ``cfg.ratios``
            and ``cfg.seed``).

    Returns:
        The run folder.
    """
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    out = Path(cfg.out)
    cfg.check()
    last = out / "last.ckpt"
    trainer, ckpt, logger, interruption = _trainer(cfg, progress, callbacks)
    rank, world = trainer.global_rank, trainer.world_size
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out) if rank == 0 else contextlib.nullcontext():
        if rank == 0:
            remove_stale_temporaries(out)
        resume_from = last if resume and last.is_file() else None
        dataset, split, parts = _read_parts(cfg, split, resume_from, test)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        module = build_module(cfg, pretrained=resume_from is None)  # --init and --weights are read here
        trained = out / "train.json"
        will_train = not (resume and trained.is_file())  # a resumed run that had finished training only evaluates
        epoch = _resumed_epoch(resume_from, world, cfg, will_train)
        lr_head, lr_base = cfg.learning_rates()
        # the loaders too are made before an old run is replaced: whatever can fail before training has been tried
        loaders = (
            (
                make_loader(parts["train"], cfg, True, rank, world, dataset.format == "tid2013"),
                make_loader(parts["val"], cfg, False, rank, world),
            )
            if will_train
            else ()
        )
        if rank == 0:
            if not resume:  # every input is valid: only now is an old run replaced (with overwrite)
                _prepare_run_folder(out, Path(cfg.split_file) if cfg.split_file else None, overwrite)
            if resume_from:
                _restore_log(out, logger, epoch)
            else:
                write_json(out / "split.json", split, indent=1)
                write_json(out / "config.json", asdict(cfg) | {"lr_head": lr_head, "lr_base": lr_base})
            log.info(
                "training on %s: %d process(es) x batch %d = effective batch %d; learning rates as given "
                "(head %g, backbone %g)",
                *(trainer.strategy.root_device.type, world, cfg.batch_size, world * cfg.batch_size, lr_head, lr_base),
            )
        if will_train:
            _fit(trainer, module, loaders, resume_from, interruption)
            if rank != 0:
                return out
            loss_curve(out / "metrics.csv", out / "loss_curve.png")
            summary = {
                "epochs": trainer.current_epoch,
                "best_val_emd": float(ckpt.best_model_score),
                "seconds": round(time.perf_counter() - t0, 1),
                "cpu_seconds": None if cpu0 is None else round(_cpu_seconds() - cpu0, 1),
                "device": str(trainer.strategy.root_device),
                "resumed": resume_from is not None,
                "processes": world,
                "effective_batch_size": world * cfg.batch_size,
            }
            write_json(trained, summary)
        if rank != 0:
            return out
        if cfg.export_onnx:  # first, so the test evaluation runs on ONNX Runtime (pynima.evaluation.evaluate)
            _export(out / "best.ckpt")
        if test and parts["test"]:  # a split may have no test part (a final model trained on every reference)
            _test(cfg, out, split)
    return out

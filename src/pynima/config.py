"""``TrainConfig``: every option of a training run, checked on construction, saved as the run's config.json.

A light module (no torch): the CLI reads the defaults from here for its help texts, and ``pynima.training.train`` runs
them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

from pynima.errors import PynimaError
from pynima.files import read_json

__all__ = [
    "ACCELERATORS",
    "CROP_MODES",
    "CROP_SPELLINGS",
    "Connections",
    "DEFAULT_CROPS",
    "DEFAULT_RECIPE",
    "ENGINES",
    "FORMATS",
    "IGNORED_CONFIG_KEYS",
    "LABELS",
    "Limits",
    "OPTIMIZERS",
    "RECIPES",
    "SCHEDULES",
    "SGD_MOMENTUM",
    "SPLITS",
    "STRATEGIES",
    "TrainConfig",
    "crop_mode",
    "literal_choices",
]

# The allowed values of each option, as Literal types: TrainConfig's fields are typed with them, and check(), the
# CLI's choices and the service's schema read the values from them (the tuples below), so each list is written once.
Schedule = Literal["constant", "cosine"]
Optimizer = Literal["adam", "sgd"]  # each recipe gives learning rates for both
Recipe = Literal["paper", "pynima"]
CropMode = Literal["centre", "grid", "full"]  # how an image is scored: see pynima.scoring.preprocess
Labels = Literal["auto", "maxent", "mean-only"]  # how targets are made: see pynima.model.labels.label_distributions
VoteStd = Literal["sem", "fixed", "raw"]  # TID2013's mos_std -> the votes' std: see pynima.model.labels.vote_std
Split = Literal["reference", "random", "official"]  # see pynima.datasets.splits (make_split, dataset_split)
# the dataset layouts pynima reads (pynima.datasets, each registered under one of these; docs/datasets.md)
Format = Literal["tid2013", "kadid10k", "koniq10k", "live", "csiq", "livec", "spaq", "ava", "csv"]
Precision = Literal["32", "bf16-mixed"]  # "bf16-mixed": Lightning's bfloat16 autocast
Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps"]  # where training runs: Lightning's (docs/distributed.md)
Strategy = Literal["auto", "ddp", "fsdp"]
# what runs a model when it scores: see pynima.scoring.models.load (auto: ONNX Runtime where there is an export)
Engine = Literal["auto", "torch", "onnx", "openvino"]

SCHEDULES = get_args(Schedule)
OPTIMIZERS = get_args(Optimizer)
CROP_MODES = get_args(CropMode)
LABELS = get_args(Labels)
VOTE_STDS = get_args(VoteStd)
SPLITS = get_args(Split)
FORMATS = get_args(Format)
PRECISIONS = get_args(Precision)
ACCELERATORS = get_args(Accelerator)
STRATEGIES = get_args(Strategy)
ENGINES = get_args(Engine)
# Training recipes, as data: the values a recipe gives the options a run leaves unset. Per optimizer, the (head,
# backbone) learning rates. "paper": the reference implementation's constant rates, for reproducing its numbers.
# "pynima": what won the paired by-reference benchmark (docs/results.md, "The pynima recipe").
RECIPES: dict[Recipe, dict] = {
    "paper": {
        "schedule": "constant",
        "warmup_epochs": 0.0,
        "clean_label": False,
        "adam": (3.7e-5, 1.4e-4),
        "sgd": (3e-6, 3e-7),
    },
    "pynima": {
        "schedule": "cosine",
        "warmup_epochs": 0.3,
        "clean_label": True,
        "adam": (2.55e-4, 7.1e-4),
        "sgd": (3e-6, 3e-7),
    },
}
CROP_SPELLINGS = {"center": "centre"}  # accepted wherever a crop mode is given, as the American spelling


def crop_mode(text: str) -> str:
    """``text`` as one of CROP_MODES when it is another spelling of one (``"center"``), else unchanged."""
    return CROP_SPELLINGS.get(text, text)


DEFAULT_CROPS: CropMode = "centre"  # how predict, evaluate, serve, Ray and a run's test part score when not told
DEFAULT_RECIPE: Recipe = "pynima"

# keys a saved config may carry besides TrainConfig's fields (written by pynima search for the record)
IGNORED_CONFIG_KEYS = {"about", "best_val_emd", "trial"}


def literal_choices(hint: object) -> tuple[tuple, bool]:
    """The values of a ``Literal`` type (or of ``Literal | None``) and whether None is allowed; ``()`` for other types.

    Args:
        hint: a resolved type hint, as ``typing.get_type_hints`` returns it.

    Returns:
        (values, nullable).
    """
    if get_origin(hint) is Literal:
        return get_args(hint), False
    literals = [a for a in get_args(hint) if get_origin(a) is Literal]
    return (get_args(literals[0]), type(None) in get_args(hint)) if literals else ((), False)


def _number(value: object) -> bool:
    """An int or a float, not a bool (JSON's true would otherwise pass as 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


SGD_MOMENTUM = 0.9  # the paper's, with --optimizer sgd


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as config.json in the run directory."""

    data: str
    out: str = "runs/nima"
    format: Format | None = None  # the dataset's layout (pynima.config.FORMATS); None: detected from its files
    scale: tuple[float, float] | None = None  # a CSV dataset's (worst, best) score: see pynima.datasets.record.Scale
    backbone: str = "tf_efficientnet_lite0"
    weights: str | None = None
    split: Split = "reference"  # or "random", or "official" (the dataset's own, KonIQ and AVA)
    split_file: str | None = None
    ratios: tuple[float, float, float] = (0.7, 0.2, 0.1)
    labels: Labels = "auto"  # vote histograms where the dataset has them, else max-entropy; see LABELS
    vote_std: VoteStd = "sem"  # see pynima.model.labels.vote_std
    optimizer: Optimizer = "adam"  # or "sgd", with SGD_MOMENTUM
    lr_head: float | None = None  # default: RECIPES[recipe][optimizer][0]
    lr_base: float | None = None  # default: RECIPES[recipe][optimizer][1]
    epochs: int = 100
    patience: int = 10
    batch_size: int = 16
    num_workers: int = 2
    seed: int = 0
    export_onnx: bool = True  # best.onnx next to best.ckpt, for the fast-starting onnx engine of pynima predict
    precision: Precision = "32"  # or "bf16-mixed": Lightning's bfloat16 autocast (bench/train_step.py measures it)
    cache_images: bool = False  # decode once into memory and crop in the main process (no loader workers)
    freeze_stages: int = 0  # keep the stem and this many early backbone stages at their ImageNet weights
    allow_out_of_range: bool = False  # accept MOS outside the dataset's scale (clipped to it for the targets)
    recipe: Recipe = DEFAULT_RECIPE  # where the schedule, warm-up and learning rates come from when not given
    schedule: Schedule | None = None  # "constant", or "cosine": decay to 0 at the end of the epochs budget (lr_factor)
    warmup_epochs: float | None = None  # linear warm-up from 0 over this many epochs
    test_crops: CropMode = DEFAULT_CROPS  # how the test part is scored (CROP_MODES; compared in docs/results.md)
    # the clean reference images as ranking anchors (pynima.training.module.ranking_loss): a quarter of each batch's
    # images come with their clean reference, cropped alike, which must outscore them by ranking_margin on the 0-9
    # scale; the hinge is added to EMD with this weight (0: EMD alone, no references)
    ranking_weight: float = 0.0
    ranking_margin: float = 0.2
    # the clean reference images as labelled training items (pynima.training.versions.clean_anchors): a quarter of each
    # batch's images come with their clean reference, labelled at its scene's highest MOS plus ranking_margin; None: the
    # recipe's (pynima: on, compared in docs/results.md; a dataset without reference images trains without them)
    clean_label: bool | None = None
    # light versions of the clean references (pynima.training.versions.light_versions): noise, blur, JPEG lighter than
    # TID2013's level 1, made during training and labelled between the clean label and level 1; needs clean_label
    # and a TID2013-layout dataset (its type numbering)
    light_versions: bool = False
    # ladders of unlabelled clean photos (pynima.training.versions.LadderRung): a folder of photos with no scores, each
    # batch joined by one of them with a lighter and a heavier version of one distortion type (LADDER_KINDS), cropped
    # alike; a hinge (pynima.training.module.ladder_loss) asks clean > lighter > heavier, with this weight (0: off)
    ladder_photos: str | None = None
    ladder_weight: float = 0.25  # the weight of the design measured last (docs/results.md, stop 33)
    # shift consistency (pynima.training.module.shift_loss): a quarter of each batch's images are seen a second time,
    # the crop moved by up to pynima.scale.SHIFT pixels, and the two predicted means' difference, in units of the
    # batch's spread of scores, is added with this weight (0: off), so a score stays put when the picture shifts
    shift_weight: float = 0.0
    init: str | None = None  # start from this pynima checkpoint's weights (fine-tuning) instead of ImageNet's
    # where it trains, passed to Lightning's Trainer: under ddp each of devices x num_nodes processes takes batch_size
    # images per step, so the effective batch is their product; learning rates are used as given (docs/distributed.md)
    accelerator: Accelerator = "auto"
    devices: int | str = 1  # processes per node (GPUs, or CPU processes), or "auto": every GPU of the node
    num_nodes: int = 1
    strategy: Strategy = "auto"

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> TrainConfig:
        """A config saved as JSON (a run's config.json, or the best_config.json of ``pynima search``), with
        ``overrides`` applied on top; unknown keys are an error naming the file.
        """
        from dataclasses import fields

        saved = read_json(path)
        if not isinstance(saved, dict):
            raise PynimaError(f"{path}: not a config (a JSON object of options expected)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(saved) - known - IGNORED_CONFIG_KEYS)
        if unknown:
            raise PynimaError(f"{path}: unknown config key(s) {', '.join(unknown)}")
        values = {k: v for k, v in saved.items() if k in known} | overrides
        values.setdefault("recipe", "paper")  # a config written before recipes existed had the paper's defaults
        values.setdefault("clean_label", False)  # nor did one written before clean labels existed
        for name in ("ratios", "scale"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        if "data" not in values:
            raise PynimaError(f"{path}: no 'data' in the config and no dataset given")
        return cls(**values)

    def learning_rates(self) -> tuple[float, float]:
        """(head, backbone) learning rates: the ones given, else the recipe's for the optimizer."""
        default = RECIPES[self.recipe][self.optimizer]
        return (
            default[0] if self.lr_head is None else self.lr_head,
            default[1] if self.lr_base is None else self.lr_base,
        )

    def __post_init__(self) -> None:
        # pathlib paths are welcome from Python
        for name in ("data", "out", "weights", "split_file", "init", "ladder_photos"):
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        recipe = RECIPES.get(self.recipe) if isinstance(self.recipe, str) else None  # check() refuses a bad one
        for name in ("schedule", "warmup_epochs", "clean_label"):
            if getattr(self, name) is None and recipe:
                setattr(self, name, recipe[name])
        self.check()

    def check(self) -> None:
        """Refuse values that would fail late (after a run folder was replaced) or train silently wrong; one
        PynimaError naming the option. Runs on construction, so a config read from a file is checked too.
        """
        self._check_types()
        self._check_choices()  # before the flags: a wrong recipe leaves its flags unset
        for name in ("export_onnx", "cache_images", "allow_out_of_range", "clean_label", "light_versions"):
            if not isinstance(getattr(self, name), bool):
                raise PynimaError(f"{name} must be true or false, got {getattr(self, name)!r}")
        self._check_numbers()
        if self.light_versions and not self.clean_label:
            raise PynimaError("light_versions needs clean_label: their labels lie between the clean label and level 1")

    def _check_types(self) -> None:
        for name in ("data", "out", "backbone"):
            if not isinstance(getattr(self, name), str):
                raise PynimaError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("weights", "split_file", "init", "ladder_photos"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise PynimaError(f"{name} must be a path or null, got {getattr(self, name)!r}")

    def _check_choices(self) -> None:
        """Every field typed with a Literal (or a Literal or None) holds one of its values."""
        hints = get_type_hints(type(self))  # resolves every annotation: once per check, not per field
        for f in fields(self):
            choices, nullable = literal_choices(hints[f.name])
            value = getattr(self, f.name)
            if choices and value not in choices and not (nullable and value is None):
                null = " (or null: detected)" if f.name == "format" else " (or null)" if nullable else ""
                raise PynimaError(f"{f.name} must be one of {', '.join(choices)}{null}, got {value!r}")

    def _check_numbers(self) -> None:
        r = self.ratios
        if (
            not isinstance(r, (tuple, list))
            or len(r) != 3
            or not all(_number(v) and 0 <= v <= 1 for v in r)
            or r[0] <= 0
            or r[1] <= 0
            or sum(r) > 1 + 1e-6
        ):
            raise PynimaError(
                f"ratios must be train, val and test fractions (train and val above 0, summing to at most 1), got {r!r}"
            )
        if self.devices != "auto" and not (
            isinstance(self.devices, int) and not isinstance(self.devices, bool) and self.devices >= 1
        ):
            raise PynimaError(f"devices must be a positive integer or 'auto', got {self.devices!r}")
        lows = {
            "epochs": 1,
            "batch_size": 1,
            "patience": 1,
            "num_workers": 0,
            "freeze_stages": 0,
            "num_nodes": 1,
            "seed": 0,
        }
        for name, low in lows.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise PynimaError(f"{name} must be an integer of at least {low}, got {value!r}")
        for name in ("ranking_weight", "ranking_margin", "ladder_weight", "shift_weight"):
            value = getattr(self, name)
            if not (_number(value) and math.isfinite(value) and value >= 0):
                raise PynimaError(f"{name} must be a number of at least 0, got {value!r}")
        for name in ("lr_head", "lr_base"):
            value = getattr(self, name)
            if value is not None and not (_number(value) and math.isfinite(value) and value > 0):
                raise PynimaError(f"{name} must be a positive number, got {value!r}")
        s = self.scale
        if s is not None and not (
            isinstance(s, (tuple, list))
            and len(s) == 2
            and all(_number(v) and math.isfinite(v) for v in s)
            and s[0] != s[1]
        ):
            raise PynimaError(f"scale must be two different numbers, the worst score then the best, got {s!r}")
        if not (_number(self.warmup_epochs) and 0 <= self.warmup_epochs <= self.epochs):
            raise PynimaError(f"warmup_epochs must be between 0 and epochs ({self.epochs}), got {self.warmup_epochs!r}")


# the service's limits (pynima serve, docs/serving.md); here so the CLI's help reads them without FastAPI
@dataclass(frozen=True)
class Limits:
    """What one request may send (see the module docstring). The pixel budgets count decoded width x height, read
    from the images' headers: about 10 bytes of memory each while an image is decoded (RGB, before its crops).
    """

    max_body: int = 33_554_432  # 32 MiB
    max_files: int = 16
    body_timeout: float = 30.0
    max_request_pixels: int = 100_000_000  # one image at Pillow's own cap (89.5 million) fits
    max_inflight_pixels: int = 200_000_000  # all requests being decoded or scored together: about 2 GB


@dataclass(frozen=True)
class Connections:
    """What uvicorn allows a client's connection (``serve``): at most ``max_connections`` open (uvicorn's
    limit_concurrency: beyond it, a request gets its plain-text 503), ``header_timeout`` seconds to send each request
    head, ``keep_alive`` seconds idle between requests, a request head of ``max_header_bytes`` at most (h11: over it,
    400).
    """

    max_connections: int = 2048
    header_timeout: float = 10.0
    keep_alive: float = 5.0
    max_header_bytes: int = 16_384

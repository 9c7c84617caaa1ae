"""Option groups of the training commands (train, search, benchmark): the dataset, training and distributed
options, and the argument types every command uses. The scoring commands' groups: pynima.cli.scoring_options.
"""

from __future__ import annotations

import argparse

__all__ = [
    "add_dataset_options",
    "add_distributed_options",
    "add_train_options",
    "key_value",
    "positive_int",
]


def positive_int(text: str) -> int:
    """argparse type for counts such as --batch-size: 0, negatives and non-numbers are a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def key_value(text: str) -> str:
    """argparse type for KEY=VALUE (pynima export --metadata)."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip() or not key.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a KEY of letters, digits and _, got {text!r}")
    return text


def add_dataset_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--format and --scale: how DATA is read (pynima.datasets)."""
    from pynima.config import FORMATS

    p.add_argument(
        "--format",
        choices=list(FORMATS),
        help="the dataset's layout (default: detected from its files; pynima docs datasets)",
    )
    p.add_argument(
        "--scale",
        type=float,
        nargs=2,
        metavar=("WORST", "BEST"),
        help="a CSV dataset's scale, worst score first: 1 5 for a 1-5 MOS, 100 0 for a 0-100 DMOS",
    )


def add_train_options(p: argparse.ArgumentParser, out: str, ratios: str, epochs: int) -> None:
    """The options that become TrainConfig fields, in groups. The parser uses argument_default=SUPPRESS, so an option
    left out is absent and the value comes from --config FILE or TrainConfig; the defaults shown are TrainConfig's.
    """
    from dataclasses import fields

    from pynima.config import TrainConfig

    d = {f.name: f.default for f in fields(TrainConfig)}
    _data_options(p.add_argument_group("data", "what to train on, how it is read and split"), ratios)
    _model_options(p.add_argument_group("model"))
    _optimization_options(p.add_argument_group("optimization"), d, epochs)
    ranking = p.add_argument_group(
        "clean references and ranking", "how a dataset's clean reference images join training"
    )
    _ranking_options(ranking, d)
    _run_options(p.add_argument_group("run", "where it starts from, what it writes, how it is tested"), d, out)


def _data_options(g: argparse._ArgumentGroup, ratios: str) -> None:
    """Options of the data group: what to train on, how it is read and split."""
    from pynima.config import LABELS, SPLITS, VOTE_STDS

    g.add_argument(
        "data",
        nargs="?",
        help="dataset folder in one of the layouts pynima reads (pynima docs "
        "datasets: TID2013, KADID-10k, KonIQ-10k, LIVE, CSIQ, LIVE Challenge, "
        "SPAQ, AVA, or pynima synth output), or a CSV file",
    )
    add_dataset_options(g)
    g.add_argument(
        "--split",
        choices=list(SPLITS),
        help="divide the reference images (default; no scene in two sets; for camera photos each image "
        "is its own reference), the images themselves (leaky on synthetic datasets; the reference "
        "implementation's protocol, for comparison), or the dataset's official split (KonIQ, AVA)",
    )
    g.add_argument("--split-file", help="reuse a split.json from an earlier run")
    g.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        metavar="R",
        help=f"train val test fractions, or train test (validation is then carved from train, 15%% of "
        f"its references) (default {ratios})",
    )
    g.add_argument(
        "--labels",
        choices=list(LABELS),
        help="target distributions: auto (default): the vote histograms where the dataset has them (AVA, "
        "KonIQ), else max-entropy from mean and std; maxent: always max-entropy; mean-only: "
        "max-entropy from the mean alone",
    )
    g.add_argument(
        "--vote-std",
        choices=list(VOTE_STDS),
        help="how TID2013's mos_std becomes a vote std (default sem; see pynima.model.labels.vote_std)",
    )

    g.add_argument(
        "--cache-images",
        action="store_true",
        help="decode the dataset once into memory (1.8 GB for TID2013) instead of every epoch",
    )
    g.add_argument(
        "--allow-out-of-range",
        action="store_true",
        help="accept scores outside the scale, TID2013's 0-9 or a CSV's --scale (an error by default: "
        "another scale would train silently wrong)",
    )


def _model_options(g: argparse._ArgumentGroup) -> None:
    """Options of the model group: the backbone and where its weights come from."""
    g.add_argument(
        "--backbone",
        help="tf_efficientnet_lite0 (default), _lite1, _lite2, _lite0_aa (anti-aliased; offline weights); "
        "mobilenet_v2, mobilenetv3_large_100, resnet50, vgg16 (need --weights offline)",
    )
    g.add_argument("--weights", help="ImageNet weights file for the backbone")
    g.add_argument(
        "--init",
        metavar="CKPT",
        help="start from the weights of a pynima checkpoint (backbone and head) instead of ImageNet's: "
        "fine-tuning a pretrained model",
    )
    g.add_argument(
        "--freeze-stages",
        type=int,
        metavar="N",
        help="keep the backbone's stem and first N stages at their ImageNet weights (default 0: train "
        "all): faster steps for some SRCC (measured: pynima docs performance, pynima docs results)",
    )


def recipes(key: str, fmt: str = "{}") -> str:
    """What each recipe gives an option, for its help: ``paper: constant; pynima: cosine``."""
    from pynima.config import RECIPES

    return "; ".join(f"{name}: {fmt.format(r[key])}" for name, r in RECIPES.items())


def _optimization_options(g: argparse._ArgumentGroup, d: dict, epochs: int) -> None:
    """Options of the optimization group: the recipe, optimizer, rates, schedule and batch."""
    from pynima.config import DEFAULT_RECIPE, OPTIMIZERS, PRECISIONS, RECIPES, SCHEDULES

    g.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help=f"where the schedule, warm-up and learning rates come from when not given (default "
        f"{DEFAULT_RECIPE}; paper: the reference implementation's constant rates, to reproduce its "
        f"numbers; compared: pynima docs results)",
    )
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), help=f"default {d['optimizer']}")

    def rates(i: int) -> str:
        return "default: the recipe's; " + "; ".join(
            f"{name}: {r['adam'][i]:g} (adam) / {r['sgd'][i]:g} (sgd)" for name, r in RECIPES.items()
        )

    g.add_argument("--lr-head", type=float, help=rates(0))
    g.add_argument("--lr-base", type=float, help=rates(1))
    g.add_argument("--epochs", type=int, help=f"maximum epochs (default {epochs})")
    g.add_argument(
        "--schedule",
        choices=list(SCHEDULES),
        help=f"learning rate over the run: constant or cosine decay to 0 at the end of --epochs "
        f"(default: the recipe's; {recipes('schedule')})",
    )
    g.add_argument(
        "--warmup-epochs",
        type=float,
        metavar="E",
        help=f"linear learning-rate warm-up from 0 over the first E epochs (default: the recipe's; "
        f"{recipes('warmup_epochs', '{:g}')})",
    )
    g.add_argument("--patience", type=int, help=f"early stopping patience on validation EMD (default {d['patience']})")
    g.add_argument("--batch-size", type=int, help=f"default {d['batch_size']}")
    g.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help="32 (default) or bf16-mixed: bfloat16 autocast; whether it is faster depends on the CPU and "
        "the backbone (measured: pynima docs performance)",
    )
    g.add_argument("--seed", type=int, help=f"seed of the split and the training (default {d['seed']})")


def _ranking_options(g: argparse._ArgumentGroup, d: dict) -> None:
    """Options of the ranking group: how the clean reference images join training."""
    from pynima.scale import SHIFT

    g.add_argument(
        "--ranking-weight",
        type=float,
        metavar="W",
        help=f"weight of the ranking term added to EMD: the dataset's clean reference images join "
        f"training as anchors that must outscore their distorted versions, cropped alike, by the "
        f"margin (0: EMD alone; default {d['ranking_weight']:g})",
    )
    g.add_argument(
        "--ranking-margin",
        type=float,
        metavar="M",
        help=f"the ranking term's margin on the 0-9 scale (default {d['ranking_margin']:g})",
    )
    g.add_argument(
        "--clean-label",
        action=argparse.BooleanOptionalAction,
        help=f"add the dataset's clean reference images to training, labelled at their scene's highest "
        f"MOS plus --ranking-margin (TID2013 gives them no score; default: the recipe's; "
        f"{recipes('clean_label')})",
    )
    g.add_argument(
        "--light-versions",
        action=argparse.BooleanOptionalAction,
        help=f"add light versions of the clean references (noise, blur, JPEG lighter than TID2013's "
        f"level 1), made during training and labelled between the clean label and level 1; a "
        f"tid2013-layout dataset only (default {'on' if d['light_versions'] else 'off'})",
    )
    g.add_argument(
        "--ladder-photos",
        metavar="DIR",
        help="clean photos without scores: each batch gets one, with a lighter and a heavier version of one "
        "distortion type, cropped alike; a hinge asks for that order (default: none)",
    )
    g.add_argument("--ladder-weight", type=float, metavar="W", help=f"its weight (default {d['ladder_weight']:g})")
    g.add_argument(
        "--shift-weight",
        type=float,
        metavar="W",
        help=f"weight of the shift-consistency term: a quarter of each batch is seen again with the crop moved "
        f"by up to {SHIFT} px, and the two predicted means must agree, relative to the batch's spread of "
        f"scores (0: off; default {d['shift_weight']:g})",
    )


def _run_options(g: argparse._ArgumentGroup, d: dict, out: str) -> None:
    """Options of the run group: where it starts from, what it writes, how it is tested."""
    from pynima.config import CROP_MODES, crop_mode

    g.add_argument(
        "--config",
        metavar="FILE",
        help="start from a saved config (a run's config.json, or "
        "best_config.json of pynima search); options given override "
        "it, and --out is never taken from it",
    )
    g.add_argument("--out", help=f"output folder (default {out})")
    g.add_argument(
        "--test-crops",
        type=crop_mode,
        choices=list(CROP_MODES),
        help=f"how the test part is scored: one centre 224 crop, the grid of 224 crops covering the "
        f"image (averaged), or the full image at native resolution (default {d['test_crops']}; "
        f"compared: pynima docs results)",
    )
    g.add_argument("--num-workers", type=int, help=f"data loading processes (default {d['num_workers']})")
    g.add_argument(
        "--no-onnx",
        dest="export_onnx",
        action="store_false",
        help="do not write best.onnx next to best.ckpt (it lets pynima predict start fast)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _devices(text: str) -> int | str:
    """argparse type for --devices: a positive integer or auto."""
    if text == "auto":
        return text
    return positive_int(text)


def add_distributed_options(parser: argparse.ArgumentParser) -> None:
    """Where training runs: Lightning's Trainer options (docs/distributed.md)."""
    from pynima.config import ACCELERATORS, STRATEGIES

    p = parser.add_argument_group("devices", "where training runs (pynima docs distributed)")
    p.add_argument("--accelerator", choices=list(ACCELERATORS), help="auto (default): a GPU when there is one")
    p.add_argument(
        "--devices",
        type=_devices,
        metavar="N",
        help="processes per node, one per GPU (or CPU processes), or auto: every GPU (default 1). Each "
        "takes --batch-size images per step: the effective batch is batch x devices x nodes, and "
        "the learning rates are used as given",
    )
    p.add_argument("--num-nodes", type=positive_int, metavar="M", help="machines (default 1; under torchrun or SLURM)")
    p.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        help="auto (default: ddp with more than one process), ddp, or fsdp (sharded; for large backbones)",
    )

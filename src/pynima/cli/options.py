"""Option groups several commands share: the dataset, training, distributed and device options, and their
argument types.
"""

from __future__ import annotations

import argparse

__all__ = [
    "CROPS_HELP",
    "DEVICE_HELP",
    "add_dataset_options",
    "add_distributed_options",
    "add_predict_options",
    "add_serve_options",
    "add_train_options",
    "key_value",
    "positive_int",
]

DEVICE_HELP = (
    "cpu (default), cuda, cuda:N (the onnx engine with onnxruntime-gpu installed, or the torch engine "
    "with a CUDA build of torch) or mps (torch engine); a device this machine lacks is a one-line error"
)


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


CROPS_HELP = (
    "how an image is scored: centre (one 224x224 crop from its centre), grid (224x224 crops covering it, "
    "distributions averaged) or full (the whole image at native resolution; needs an export made with "
    "dynamic image size, as pynima export writes) (default %(default)s; compared: pynima docs results)"
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
        f"by up to {SHIFT} px, and the two predicted means must agree (0: off; default {d['shift_weight']:g})",
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


def add_predict_options(p: argparse.ArgumentParser) -> None:
    """pynima predict's options, in groups: the output, Ray, the model."""
    _predict_output(p.add_argument_group("output"))
    _predict_ray(
        p.add_argument_group("Ray", "scoring on a Ray cluster into one Parquet file (pip install 'pynima[ray]')")
    )
    _predict_model(p.add_argument_group("model"))


def _predict_output(g: argparse._ArgumentGroup) -> None:
    """pynima predict: what it writes."""
    from pynima.cli.output import WRITERS

    g.add_argument(
        "--format",
        choices=list(WRITERS),
        default=None,
        help="table (default): mean, std, path; json, jsonl (JSON Lines, one object per image) and csv "
        "add the distribution and the warning and error of each input; every format is written as "
        "the images are scored",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar (it shows only on a terminal anyway)")
    g.add_argument("--batch-size", type=positive_int, default=16, help="images per network batch (default 16)")


def _predict_ray(g: argparse._ArgumentGroup) -> None:
    """pynima predict: scoring on Ray."""
    g.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="score on Ray (pip install 'pynima[ray]') into the Parquet file --out: on a new local "
        "instance or the cluster RAY_ADDRESS names, or on ADDRESS (auto, HOST:PORT, "
        "ray://HOST:PORT); PATHS may then be s3://, gs://... URIs too (pynima docs cluster-scoring)",
    )
    g.add_argument(
        "--out",
        metavar="FILE",
        help="with --ray: the Parquet file to write (path, mean, std, "
        "distribution, warning, error); refused if it exists",
    )
    g.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="N",
        help="with --ray: scoring actors, one CPU each (default: a pool that grows from 1 while there is "
        "work and there are free CPUs)",
    )


def _predict_model(g: argparse._ArgumentGroup) -> None:
    """pynima predict: the model and how it runs."""
    from pynima.config import CROP_MODES, DEFAULT_CROPS, ENGINES, crop_mode

    g.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="auto",
        help="auto (default): ONNX Runtime for an .onnx file and for a checkpoint with an up-to-date "
        "export next to it (best.onnx, written by pynima train), PyTorch otherwise; openvino runs "
        "the same export on OpenVINO",
    )
    g.add_argument("--device", default="cpu", help=DEVICE_HELP)
    g.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 arithmetic (torch and openvino engines): faster on CPUs with AMX, not bit-equal "
        "(speed and SRCC cost: pynima docs performance)",
    )
    g.add_argument("--crops", type=crop_mode, choices=list(CROP_MODES), default=DEFAULT_CROPS, help=CROPS_HELP)


def add_serve_options(p: argparse.ArgumentParser) -> None:
    """pynima serve's options, in groups: the network, the model, the limits."""
    from dataclasses import asdict

    from pynima.config import Connections, Limits

    limits, connections = asdict(Limits()), asdict(Connections())
    _serve_network(p.add_argument_group("network"))
    _serve_model(p.add_argument_group("model"))
    _serve_limits(
        p.add_argument_group("limits", "what one client may send; over a limit, the request is refused"),
        limits,
        connections,
    )


def _serve_network(g: argparse._ArgumentGroup) -> None:
    """pynima serve: where it listens and whom it answers."""
    g.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    g.add_argument("--port", type=int, default=8000, help="default 8000")
    g.add_argument(
        "--cors",
        nargs="+",
        default=[],
        metavar="ORIGIN",
        help="origins whose pages may call the API (default: none; CORS off, and a POST from a page of "
        "another origin is refused with 403)",
    )
    g.add_argument(
        "--allowed-hosts",
        nargs="+",
        metavar="HOST",
        help="Host headers the server answers to (others: 400), e.g. scores.example.com *.example.com, or "
        "* for any (default: the --host address, with localhost and 127.0.0.1 when it is a loopback "
        "address, and this machine's names and addresses when it is 0.0.0.0)",
    )


def _serve_model(g: argparse._ArgumentGroup) -> None:
    """pynima serve: the model and how requests share its calls."""
    from pynima.config import ENGINES

    g.add_argument("--engine", choices=list(ENGINES), default="auto", help="as pynima predict (default auto)")
    g.add_argument("--device", default="cpu", help=DEVICE_HELP)
    g.add_argument("--workers", type=int, default=1, help="server processes, each with its own model (default 1)")
    g.add_argument("--max-batch", type=int, default=32, help="crops per network call at most (default 32)")
    g.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long a request waits for others to share its network call (default 5)",
    )


def _serve_limits(g: argparse._ArgumentGroup, limits: dict, connections: dict) -> None:
    """pynima serve: what one client may send."""
    g.add_argument(
        "--max-body-mb",
        type=float,
        default=limits["max_body"] / 2**20,
        help=f"request body limit in MiB (default {limits['max_body'] / 2**20:g})",
    )
    g.add_argument(
        "--max-files",
        type=int,
        default=limits["max_files"],
        help=f"images per request at most (default {limits['max_files']})",
    )
    g.add_argument(
        "--body-timeout",
        type=float,
        default=limits["body_timeout"],
        help=f"seconds a client has to send its request body (default {limits['body_timeout']:g})",
    )
    g.add_argument(
        "--max-request-megapixels",
        type=float,
        default=limits["max_request_pixels"] / 1e6,
        help="decoded pixels (width x height, from the headers) of the images of one request at most, "
        f"in millions; over it, 413 (default {limits['max_request_pixels'] / 1e6:g})",
    )
    g.add_argument(
        "--max-inflight-megapixels",
        type=float,
        default=limits["max_inflight_pixels"] / 1e6,
        help="decoded pixels of all requests in flight at most, in millions (about 10 bytes of memory "
        f"each); over it, 503 with Retry-After (default {limits['max_inflight_pixels'] / 1e6:g})",
    )
    g.add_argument(
        "--max-connections",
        type=int,
        default=connections["max_connections"],
        help=f"open connections at most, per process; beyond it, 503 (default {connections['max_connections']})",
    )
    g.add_argument(
        "--header-timeout",
        type=float,
        default=connections["header_timeout"],
        help="seconds a client has to send each request's headers; then 408 and the connection is closed "
        f"(default {connections['header_timeout']:g})",
    )
    g.add_argument(
        "--keep-alive",
        type=float,
        default=connections["keep_alive"],
        help=f"seconds an idle connection is kept open (default {connections['keep_alive']:g})",
    )

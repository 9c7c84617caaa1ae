"""The ``pynima`` command line. Heavy modules (torch, piq, skimage) are imported inside commands, so ``--help`` is
instant."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import os
import re
import signal
import sys
import threading
import warnings

from pynima.errors import PynimaError, Terminated
from pynima.scale import BINS

# the optional extra (pyproject.toml) that installs each module the core install lacks
EXTRAS = {
    m: "train"
    for m in (
        "torch",
        "torchvision",
        "timm",
        "lightning",
        "scipy",
        "skimage",
        "pywt",
        "piq",
        "matplotlib",
        "filelock",
        "onnx",
        "onnxscript",
        "openpyxl",
    )
}
EXTRAS |= {"optuna": "search", "openvino": "openvino"}
EXTRAS |= {
    m: "serve"
    for m in (
        "fastapi",
        "fastapi_offline",
        "uvicorn",
        "starlette",
        "multipart",
        "python_multipart",
        "prometheus_client",
    )
}


def _synth(args: argparse.Namespace) -> None:
    from pynima.synth import synthesize

    r = synthesize(
        args.out,
        refs=args.refs,
        mos_table=args.mos_table,
        std_table=args.std_table,
        seed=args.seed,
        workers=args.workers,
        progress=not args.quiet and sys.stderr.isatty(),
        force=args.force,
    )
    state = "up to date (cached)" if r.cached else f"written in {r.seconds:.1f} s"
    print(f"{r.out}: {r.n_images} distorted images of {r.n_refs} references, labels from {r.labels}; {state}")


def _docs(args: argparse.Namespace) -> None:
    """pynima docs [TOPIC]: the documentation shipped inside the package (a pip install has no repository to read
    docs/ from): the list of topics, or one topic's Markdown on stdout."""
    from importlib.resources import files

    folder = files("pynima") / "docs"
    topics = {f.name.removesuffix(".md"): f for f in folder.iterdir() if f.name.endswith(".md")}
    if args.topic is None:
        for name in sorted(topics):
            title = topics[name].read_text(encoding="utf-8").partition("\n")[0].lstrip("# ").strip()
            print(f"{name:16} {title}")
        return
    if args.topic.removesuffix(".md") not in topics:
        hint = difflib.get_close_matches(args.topic, topics, n=1)
        raise PynimaError(
            f"no documentation topic {args.topic!r}"
            f"{f'; did you mean {hint[0]}?' if hint else ''} (topics: {', '.join(sorted(topics))})"
        )
    print(topics[args.topic.removesuffix(".md")].read_text(encoding="utf-8"), end="")


def config_from_args(args: argparse.Namespace, **defaults):
    """The TrainConfig of a command: TrainConfig's defaults, then ``defaults``, then --config FILE, then the options
    given on the command line (omitted options are absent from ``args``: see _add_train_options)."""
    from dataclasses import fields

    from pynima.config import TrainConfig
    from pynima.data import split_ratios

    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if "ratios" in given:
        given["ratios"] = split_ratios(given["ratios"])
    if given.get("scale") is not None:
        given["scale"] = tuple(given["scale"])
    if getattr(args, "config", None):  # the file never picks the output folder: rerunning must not overwrite a run
        return TrainConfig.from_file(args.config, **({"out": defaults.get("out", TrainConfig.out)} | given))
    if "data" not in given:
        raise PynimaError("give a dataset folder (or --config FILE)")
    return TrainConfig(**(defaults | given))


# options that --resume accepts next to it: they do not change what is trained (the distributed ones change only
# the effective batch of the epochs still to run)
RESUME_OPTIONS = {"resume", "quiet", "verbose", "func", "command"}
RESUME_OVERRIDES = ("num_workers", "accelerator", "devices", "num_nodes", "strategy")


def _train(args: argparse.Namespace) -> None:
    from pathlib import Path

    from pynima.config import TrainConfig
    from pynima.train import process_rank, train

    progress = not getattr(args, "quiet", False)
    if getattr(args, "resume", None):
        extra = sorted(set(vars(args)) - RESUME_OPTIONS - set(RESUME_OVERRIDES))
        if extra:
            raise PynimaError(
                f"--resume continues a run with its own config.json; drop "
                f"{', '.join('--' + e.replace('_', '-') if e != 'data' else 'DATA' for e in extra)}"
            )
        run = Path(args.resume)
        if not (run / "config.json").is_file():
            raise PynimaError(f"{run}: no config.json, so no pynima run to resume")
        overrides = {k: getattr(args, k) for k in RESUME_OVERRIDES if hasattr(args, k)}
        cfg = TrainConfig.from_file(run / "config.json", out=str(run), **overrides)
        out = train(cfg, progress=progress, resume=True)
    else:
        cfg = config_from_args(args)
        out = train(cfg, progress=progress, overwrite=getattr(args, "overwrite", False))
    if process_rank(cfg) != 0:  # the other processes of a distributed run trained; rank 0 reports
        return
    if (out / "metrics.json").is_file():
        from pynima.evaluate import format_table
        from pynima.files import read_json

        print(f"test set ({out / 'metrics.json'}):\n{format_table(read_json(out / 'metrics.json'))}")
    print(f"run directory: {out} (best.ckpt, last.ckpt, metrics.csv, loss_curve.png, metrics.json, scatter.png)")


def _benchmark(args: argparse.Namespace) -> None:
    from pynima.benchmark import format_summary, run_benchmark
    from pynima.data import split_ratios

    cfg = config_from_args(args, out="runs/benchmark", ratios=split_ratios((0.8, 0.2)))
    summary = run_benchmark(
        cfg,
        repeats=args.repeats,
        progress=not getattr(args, "quiet", False),
        cross=getattr(args, "cross", ()),
        cross_scale=tuple(getattr(args, "cross_scale", ())) or None,
    )
    if summary:  # empty on the other processes of a distributed benchmark: rank 0 reports
        print(format_summary(summary))


def _search(args: argparse.Namespace) -> None:
    from pathlib import Path

    from pynima.search import format_trials, run_search

    cfg = config_from_args(args, out="runs/search", epochs=3)
    result = run_search(
        cfg,
        trials=args.trials,
        sampler=args.sampler,
        lr_head_range=args.lr_head_range,
        lr_base_range=args.lr_base_range,
        storage=args.storage,
        study_name=args.study,
        progress=not getattr(args, "quiet", False),
    )
    print(format_trials(result))
    best = Path(cfg.out) / "best_config.json"
    print(f"best configuration: {best} (pynima train --config {best})")


def _report(args: argparse.Namespace) -> None:
    from pynima.report import write_report

    print(f"report: {write_report(args.run_dir, fmt=args.format, out=args.out)}")


def _evaluate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from pynima.data import read_split
    from pynima.evaluate import evaluate_checkpoint, format_table

    split = read_split(args.split_file) if args.split_file else None
    metrics = evaluate_checkpoint(
        args.ckpt,
        args.data,
        args.out,
        split=split,
        part=args.part,
        crops=args.crops,
        allow_out_of_range=args.allow_out_of_range,
        format=args.format,
        scale=tuple(args.scale) if args.scale else None,
        replace=args.overwrite,
    )
    print(
        f"{metrics['part']} set: {metrics['n_images']} images of a {metrics['format']} dataset "
        f"({Path(args.out) / 'metrics.json'})"
    )
    print(format_table(metrics))
    print(
        f"scores on the model's 0-9 scale; the dataset's is {metrics['scale']} (RMSE on it "
        f"{metrics['rmse_dataset_scale']:.4f}; predictions.csv has both)"
    )


def _export(args: argparse.Namespace) -> None:
    import numpy as np

    from pynima.export import export_onnx, quantize_int8
    from pynima.predict import Scorer, TorchEngine, iter_image_paths, load

    metadata = dict(item.split("=", 1) for item in args.metadata)
    fp32 = export_onnx(args.ckpt, args.out, metadata)
    print(f"ONNX (fp32, dynamic batch and image size): {fp32}")
    calibration = list(iter_image_paths([args.calibration]))[: args.calibration_images] if args.calibration else []
    probe = calibration[:8] or None
    torch_scorer, onnx_scorer = Scorer(TorchEngine.from_checkpoint(args.ckpt)), load(fp32)
    x = (
        np.concatenate([torch_scorer.inputs(p) for p in probe])
        if probe
        else np.random.default_rng(0).normal(size=(4, 3, 224, 224)).astype(np.float32)
    )
    whole = np.random.default_rng(1).normal(size=(1, 3, 300, 417)).astype(np.float32)  # another size (crops full)
    diff = max(np.abs(torch_scorer.engine(v) - onnx_scorer.engine(v)).max() for v in (x, whole))
    print(
        f"parity with PyTorch on {len(x)} {'images' if probe else 'random inputs'} and a 417x300 input: "
        f"max |difference| {diff:.2e}"
    )
    models = {"fp32": fp32}
    if args.int8:
        models["int8"] = quantize_int8(fp32, calibration)
        print(f"ONNX (int8): {models['int8']} (calibrated on {len(calibration)} images)")
    if args.data:
        from scipy import stats

        from pynima.data import apply_split, read_split
        from pynima.datasets import read_dataset

        records = read_dataset(args.data).records
        if args.split_file:
            records = apply_split(records, read_split(args.split_file), args.part)
        mos = np.array([r.mos for r in records])
        for name, path in models.items():
            scorer = load(path)
            pred = np.array([s.mean for _, s, _ in scorer.score_paths([r.path for r in records], batch_size=32)])
            print(f"SRCC {name} on {len(records)} images: {stats.spearmanr(pred, mos).statistic:.4f}")


def _serve(args: argparse.Namespace) -> None:
    from pynima.config import Connections, Limits
    from pynima.serve import serve

    if args.workers < 1 or args.max_batch < 1 or args.max_files < 1 or args.max_body_mb <= 0 or args.max_wait_ms < 0:
        raise PynimaError("--workers, --max-batch, --max-files and --max-body-mb must be positive, --max-wait-ms >= 0")
    if (
        min(
            args.max_request_megapixels,
            args.max_inflight_megapixels,
            args.header_timeout,
            args.keep_alive,
            args.max_connections,
            args.body_timeout,
        )
        <= 0
    ):
        raise PynimaError("the pixel limits, --max-connections and the timeouts must be positive")
    limits = Limits(
        max_body=int(args.max_body_mb * 2**20),
        max_files=args.max_files,
        body_timeout=args.body_timeout,
        max_request_pixels=int(args.max_request_megapixels * 1e6),
        max_inflight_pixels=int(args.max_inflight_megapixels * 1e6),
    )
    connections = Connections(
        max_connections=args.max_connections, header_timeout=args.header_timeout, keep_alive=args.keep_alive
    )
    serve(
        args.model,
        host=args.host,
        port=args.port,
        engine=args.engine,
        device=args.device,
        workers=args.workers,
        max_batch=args.max_batch,
        max_wait=args.max_wait_ms / 1000,
        limits=limits,
        cors=args.cors,
        allowed_hosts=args.allowed_hosts,
        connections=connections,
    )


DEVICE_HELP = (
    "cpu (default), cuda, cuda:N (the onnx engine with onnxruntime-gpu installed, or the torch engine "
    "with a CUDA build of torch) or mps (torch engine); a device this machine lacks is a one-line error"
)


def _positive_int(text: str) -> int:
    """argparse type for counts such as --batch-size: 0, negatives and non-numbers are a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _key_value(text: str) -> str:
    """argparse type for KEY=VALUE (pynima export --metadata)."""
    key, sep, _ = text.partition("=")
    if not sep or not key.strip() or not key.replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a KEY of letters, digits and _, got {text!r}")
    return text


def _predict(args: argparse.Namespace) -> int:
    """Score files and folders; every input gets a row (a score or an error). Exit 0 only if all were scored.

    Paths are shown by display_name (one printable line: a newline, an ESC or a byte that is not UTF-8 escaped) in the
    table, the CSV and the stderr lines; the JSON keeps the path as os.fsdecode gives it (lossless, in JSON escapes)."""
    from pathlib import Path

    from pynima.data import display_name as shown
    from pynima.predict import MODEL_SUFFIXES, load

    def problem(path, message: str | None) -> str:  # the message without the path it starts with, one line
        return shown(message.removeprefix(f"{shown(path)}: ")) if message else ""

    model, paths = None, args.paths
    if Path(paths[0]).suffix.lower() in MODEL_SUFFIXES:
        model, paths = paths[0], paths[1:]
    if not paths:
        raise PynimaError(f"no images given to score with {model} (pynima predict [MODEL] PATHS...)")
    if args.ray is not None:
        if args.device != "cpu":
            raise PynimaError("--device with --ray: the Ray actors score on their nodes' CPUs (one CPU each)")
        return _predict_on_ray(args, model, paths)
    for option, given in (("--out", args.out), ("--concurrency", args.concurrency)):
        if given is not None:
            raise PynimaError(
                f"{option} goes with --ray (scoring on Ray into a Parquet file); without --ray, "
                f"redirect --format csv or json to a file"
            )
    args.format = args.format or "table"
    scorer = load(model, engine=args.engine, crops=args.crops, bf16=args.bf16, device=args.device)
    total, failed = 0, 0
    write = _result_writer(args.format)
    bar = _progress(args.quiet)
    for path, score, error in scorer.score_paths(paths, batch_size=args.batch_size):
        total += 1
        bar.update()
        warning = score.warning if score else None
        if error:
            failed += 1
            bar.write(f"skipped: {shown(path)}: {problem(path, error)}", file=sys.stderr)
        if warning:
            bar.write(f"warning: {shown(path)}: {problem(path, warning)}", file=sys.stderr)
        write(
            {
                "path": path,
                "mean": score.mean if score else None,
                "std": score.std if score else None,
                "distribution": list(score.distribution) if score else None,
                "warning": problem(path, warning) or None,
                "error": problem(path, error) or None,
            }
        )
    write(None)
    bar.close()
    if failed:
        print(f"{failed} of {total} input(s) could not be scored (see the skipped: lines)", file=sys.stderr)
    return 1 if failed or not total else 0


TABLE_HEADER = f"{'mean':>6}  {'std':>5}  path   (scores 0-9, higher is better)"


def _result_writer(fmt: str):
    """A function that writes one result row (``None``: the end) to stdout as it comes: a table line, a CSV row, a
    JSON Lines object, or an element of one JSON array (streamed, so nothing waits for the last image)."""
    import csv
    import json

    from pynima.data import display_name as shown

    state = {"rows": 0}
    writer = csv.writer(sys.stdout) if fmt == "csv" else None
    if writer:
        writer.writerow(["path", "mean", "std"] + [f"p{k}" for k in range(BINS)] + ["warning", "error"])

    def write(row: dict | None) -> None:
        first = state["rows"] == 0
        if row is not None:
            state["rows"] += 1
        if fmt in ("json", "jsonl") and row is not None:
            text = json.dumps(dict(row, path=str(row["path"])))
        if fmt == "json":  # "[" ... "]" around the rows, an empty list when there are none
            print(
                ("[]" if first else "\n]") if row is None else ("[\n" if first else ",\n") + text,
                end="\n" if row is None else "",
            )
        elif fmt == "jsonl":
            if row is not None:
                print(text)
        elif writer:
            if row is not None:
                values = (
                    [f"{row['mean']:.4f}", f"{row['std']:.4f}"] + [f"{v:.5f}" for v in row["distribution"]]
                    if row["mean"] is not None
                    else [""] * 12
                )
                writer.writerow([shown(row["path"])] + values + [row["warning"] or "", row["error"] or ""])
        elif row is not None:  # the table
            if first:
                print(TABLE_HEADER)
            if row["mean"] is not None:
                note = f"  (warning: {row['warning']})" if row["warning"] else ""
                print(f"{row['mean']:6.3f}  {row['std']:5.3f}  {shown(row['path'])}{note}")
            else:
                print(f"{'-':>6}  {'-':>5}  {shown(row['path'])}  (error: {row['error']})")
        if fmt == "jsonl" or row is None:
            sys.stdout.flush()

    return write


def _progress(quiet: bool):
    """A progress bar on stderr (tqdm) that shows itself only after a second, on a terminal, without --quiet; its
    ``write`` prints a line above it (or plainly when there is no bar)."""
    from tqdm import tqdm

    return tqdm(unit=" images", file=sys.stderr, delay=1.0, disable=quiet or not sys.stderr.isatty(), leave=False)


def _predict_on_ray(args: argparse.Namespace, model: str | None, paths: list[str]) -> int:
    """pynima predict --ray: score on Ray into a Parquet file (docs/cluster-scoring.md); the exit status of
    pynima predict."""
    address = args.ray or None
    if address and not (address in ("auto", "local") or ":" in address):
        raise PynimaError(
            f"--ray {address}: expected an address (auto, local, HOST:PORT or ray://HOST:PORT); write "
            f"--ray=ADDRESS, or put a bare --ray after the paths"
        )
    if args.out is None:
        raise PynimaError("--ray writes a Parquet file: give it with --out results.parquet")
    for option, refused in (
        ("--format", args.format is not None),
        ("--bf16", args.bf16),
        (f"--engine {args.engine}", args.engine not in ("auto", "onnx")),
    ):
        if refused:
            raise PynimaError(f"{option} does not apply with --ray, which scores on the onnx engine into --out")
    from pathlib import Path

    from pynima.data import display_name as shown
    from pynima.ray import init, read_failures, score_dataset, write_parquet

    out = Path(args.out)
    if out.exists() or out.is_symlink():
        raise PynimaError(f"{out}: already exists; remove it or choose another --out")
    started = init(address)
    try:
        dataset = score_dataset(
            paths, model, crops=args.crops, batch_size=args.batch_size, concurrency=args.concurrency
        )
        total, failed = write_parquet(dataset, out)
    finally:
        if started:
            import ray

            ray.shutdown()
    for path, error in read_failures(out) if failed else []:
        print(f"skipped: {shown(path)}: {shown(error)}", file=sys.stderr)
    print(f"{total - failed} of {total} input(s) scored, results in {out}")
    if failed:
        print(f"{failed} of {total} input(s) could not be scored (see the skipped: lines)", file=sys.stderr)
    return 1 if failed or not total else 0


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
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


def _add_train_options(p: argparse.ArgumentParser, out: str, ratios: str, epochs: int) -> None:
    """The options that become TrainConfig fields. The parser uses argument_default=SUPPRESS, so an option left out
    is absent and the value comes from --config FILE or TrainConfig; the defaults shown are TrainConfig's."""
    from dataclasses import fields

    from pynima.config import (
        CROP_MODES,
        DEFAULT_RECIPE,
        LABELS,
        OPTIMIZERS,
        RECIPES,
        SCHEDULES,
        SPLITS,
        TrainConfig,
        crop_mode,
    )

    d = {f.name: f.default for f in fields(TrainConfig)}
    p.add_argument(
        "data",
        nargs="?",
        help="dataset folder in one of the layouts pynima reads (pynima docs "
        "datasets: TID2013, KADID-10k, KonIQ-10k, LIVE, CSIQ, LIVE Challenge, "
        "SPAQ, AVA, or pynima synth output), or a CSV file",
    )
    _add_dataset_options(p)
    p.add_argument(
        "--config",
        metavar="FILE",
        help="start from a saved config (a run's config.json, or "
        "best_config.json of pynima search); options given override "
        "it, and --out is never taken from it",
    )
    p.add_argument("--out", help=f"output folder (default {out})")
    p.add_argument(
        "--backbone",
        help="tf_efficientnet_lite0 (default), _lite1, _lite2 (offline weights); mobilenet_v2, "
        "mobilenetv3_large_100, resnet50, vgg16 (need --weights offline)",
    )
    p.add_argument("--weights", help="ImageNet weights file for the backbone")
    p.add_argument(
        "--split",
        choices=list(SPLITS),
        help="divide the reference images (default; no scene in two sets; for camera photos each image "
        "is its own reference), the images themselves (leaky on synthetic datasets; the reference "
        "implementation's protocol, for comparison), or the dataset's official split (KonIQ, AVA)",
    )
    p.add_argument("--split-file", help="reuse a split.json from an earlier run")
    p.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        metavar="R",
        help=f"train val test fractions, or train test (validation is then carved from train, 15%% of "
        f"its references) (default {ratios})",
    )
    p.add_argument(
        "--labels",
        choices=list(LABELS),
        help="target distributions: auto (default): the vote histograms where the dataset has them (AVA, "
        "KonIQ), else max-entropy from mean and std; maxent: always max-entropy; mean-only: "
        "max-entropy from the mean alone",
    )
    p.add_argument(
        "--vote-std",
        choices=["sem", "fixed", "raw"],
        help="how TID2013's mos_std becomes a vote std (default sem; see pynima.labels.vote_std)",
    )

    def recipes(key: str, fmt: str = "{}") -> str:
        return "; ".join(f"{name}: {fmt.format(r[key])}" for name, r in RECIPES.items())

    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
        help=f"where the schedule, warm-up and learning rates come from when not given (default "
        f"{DEFAULT_RECIPE}; paper: the reference implementation's constant rates, to reproduce its "
        f"numbers; compared: pynima docs results)",
    )
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), help=f"default {d['optimizer']}")

    def rates(i: int) -> str:
        return "default: the recipe's; " + "; ".join(
            f"{name}: {r['adam'][i]:g} (adam) / {r['sgd'][i]:g} (sgd)" for name, r in RECIPES.items()
        )

    p.add_argument("--lr-head", type=float, help=rates(0))
    p.add_argument("--lr-base", type=float, help=rates(1))
    p.add_argument("--epochs", type=int, help=f"maximum epochs (default {epochs})")
    p.add_argument(
        "--schedule",
        choices=list(SCHEDULES),
        help=f"learning rate over the run: constant or cosine decay to 0 at the end of --epochs "
        f"(default: the recipe's; {recipes('schedule')})",
    )
    p.add_argument(
        "--warmup-epochs",
        type=float,
        metavar="E",
        help=f"linear learning-rate warm-up from 0 over the first E epochs (default: the recipe's; "
        f"{recipes('warmup_epochs', '{:g}')})",
    )
    p.add_argument(
        "--test-crops",
        type=crop_mode,
        choices=list(CROP_MODES),
        help=f"how the test part is scored: one centre 224 crop, the grid of 224 crops covering the "
        f"image (averaged), or the full image at native resolution (default {d['test_crops']}; "
        f"compared: pynima docs results)",
    )
    p.add_argument(
        "--ranking-weight",
        type=float,
        metavar="W",
        help=f"weight of the ranking term added to EMD: the dataset's clean reference images join "
        f"training as anchors that must outscore their distorted versions, cropped alike, by the "
        f"margin (0: EMD alone; default {d['ranking_weight']:g})",
    )
    p.add_argument(
        "--ranking-margin",
        type=float,
        metavar="M",
        help=f"the ranking term's margin on the 0-9 scale (default {d['ranking_margin']:g})",
    )
    p.add_argument(
        "--clean-label",
        action=argparse.BooleanOptionalAction,
        help=f"add the dataset's clean reference images to training, labelled at their scene's highest "
        f"MOS plus --ranking-margin (TID2013 gives them no score; default: the recipe's; "
        f"{recipes('clean_label')})",
    )
    p.add_argument(
        "--light-versions",
        action=argparse.BooleanOptionalAction,
        help=f"add light versions of the clean references (noise, blur, JPEG lighter than TID2013's "
        f"level 1), made during training and labelled between the clean label and level 1; a "
        f"tid2013-layout dataset only (default {'on' if d['light_versions'] else 'off'})",
    )
    p.add_argument(
        "--init",
        metavar="CKPT",
        help="start from the weights of a pynima checkpoint (backbone and head) instead of ImageNet's: "
        "fine-tuning a pretrained model",
    )
    p.add_argument("--patience", type=int, help=f"early stopping patience on validation EMD (default {d['patience']})")
    p.add_argument("--batch-size", type=int, help=f"default {d['batch_size']}")
    p.add_argument("--num-workers", type=int, help=f"data loading processes (default {d['num_workers']})")
    p.add_argument("--seed", type=int, help=f"seed of the split and the training (default {d['seed']})")
    p.add_argument(
        "--precision",
        choices=["32", "bf16-mixed"],
        help="32 (default) or bf16-mixed: bfloat16 autocast; whether it is faster depends on the CPU and "
        "the backbone (measured: pynima docs performance)",
    )
    p.add_argument(
        "--cache-images",
        action="store_true",
        help="decode the dataset once into memory (1.8 GB for TID2013) instead of every epoch",
    )
    p.add_argument(
        "--freeze-stages",
        type=int,
        metavar="N",
        help="keep the backbone's stem and first N stages at their ImageNet weights (default 0: train "
        "all): faster steps for some SRCC (measured: pynima docs performance, pynima docs results)",
    )
    p.add_argument(
        "--allow-out-of-range",
        action="store_true",
        help="accept scores outside the scale, TID2013's 0-9 or a CSV's --scale (an error by default: "
        "another scale would train silently wrong)",
    )
    p.add_argument(
        "--no-onnx",
        dest="export_onnx",
        action="store_false",
        help="do not write best.onnx next to best.ckpt (it lets pynima predict start fast)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _devices(text: str) -> int | str:
    """argparse type for --devices: a positive integer or auto."""
    if text == "auto":
        return text
    return _positive_int(text)


def _add_distributed_options(p: argparse.ArgumentParser) -> None:
    """Where training runs: Lightning's Trainer options (docs/distributed.md)."""
    from pynima.config import ACCELERATORS, STRATEGIES

    p.add_argument("--accelerator", choices=list(ACCELERATORS), help="auto (default): a GPU when there is one")
    p.add_argument(
        "--devices",
        type=_devices,
        metavar="N",
        help="processes per node, one per GPU (or CPU processes), or auto: every GPU (default 1). Each "
        "takes --batch-size images per step: the effective batch is batch x devices x nodes, and "
        "the learning rates are used as given",
    )
    p.add_argument("--num-nodes", type=_positive_int, metavar="M", help="machines (default 1; under torchrun or SLURM)")
    p.add_argument(
        "--strategy",
        choices=list(STRATEGIES),
        help="auto (default: ddp with more than one process), ddp, or fsdp (sharded; for large backbones)",
    )


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped command, choice or option. Python 3.14's ``suggest_on_error``
    does this for commands and choices only, and pynima supports 3.11, hence these few lines."""

    def __init__(self, *args, **kwargs) -> None:
        self.option_names: list[str] = []  # before argparse's __init__, which adds -h
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.option_names.extend(action.option_strings)
        return action

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for extra in extras:  # a sub-command's parser sees its own options: suggest from them, with its usage
            close = difflib.get_close_matches(extra.split("=")[0], self.option_names, n=1) if extra[:1] == "-" else []
            if close:
                self.error(f"unrecognized argument: {extra} (did you mean {close[0]}?)")
        return namespace, extras

    def error(self, message: str):
        wrong = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if wrong:
            close = difflib.get_close_matches(wrong[1], re.findall(r"'([^']*)'", wrong[2]), n=1)
            if close:
                message += f"; did you mean {close[0]}?"
        super().error(message)


def _add_docs(sub) -> None:
    """pynima docs: its options."""
    p = sub.add_parser(
        "docs",
        help="read the documentation offline: the topics, or one of them",
        description="The documentation shipped with pynima, as Markdown on stdout (pipe it into a "
        "pager or a Markdown viewer).",
    )
    p.add_argument("topic", nargs="?", help="a topic (model-card, datasets, serving, ...); none lists them")
    p.set_defaults(func=_docs)


def _add_synth(sub) -> None:
    """pynima synth: its options."""
    p = sub.add_parser(
        "synth",
        help="write a TID2013-layout dataset (24 distortions x 5 levels per reference)",
        description="Write a TID2013-layout dataset: reference_images/, distorted_images/, "
        "mos_with_names.txt, mos_std.txt. Cached: rerunning with the same inputs is "
        "instant.",
    )
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--refs",
        metavar="DIR",
        help="reference photos, numbered in sorted file-name order (default: photos embedded in installed packages)",
    )
    p.add_argument(
        "--mos-table",
        metavar="FILE",
        help="TID2013 mos_with_names.txt: label image iRR_TT_L with "
        "the human MOS of the same reference, type and level",
    )
    p.add_argument("--std-table", metavar="FILE", help="TID2013 mos_std.txt (same order as --mos-table)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the distortions (default 0)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    p.add_argument("--force", action="store_true", help="regenerate even if the cache is valid")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)


def _add_train(sub) -> None:
    """pynima train: its options."""
    p = sub.add_parser(
        "train",
        help="train NIMA on a TID2013-layout dataset, then evaluate on its test split",
        argument_default=argparse.SUPPRESS,
    )
    _add_train_options(p, out="runs/nima", ratios="0.7 0.2 0.1", epochs=100)
    _add_distributed_options(p)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (its checkpoints, logs and results; nothing else)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue an interrupted run from RUN/last.ckpt with RUN/config.json (same final metrics "
        "as an uninterrupted run)",
    )
    p.set_defaults(func=_train)


def _add_benchmark(sub) -> None:
    """pynima benchmark: its options."""
    p = sub.add_parser(
        "benchmark",
        argument_default=argparse.SUPPRESS,
        help="train on K seeded splits (by reference image) and report the median and spread",
        description="K seeded splits, one model each, a results table per split, the median, the "
        "interquartile range and a 95%% interval over splits and images. Resumes: rerun "
        "the same command to continue after an interruption. Any row reruns alone with "
        "pynima train --config OUT/split_NN/config.json.",
    )
    _add_train_options(p, out="runs/benchmark", ratios="0.8 0.2", epochs=100)
    _add_distributed_options(p)
    p.add_argument("--repeats", type=int, default=10, help="number of splits K (default 10)")
    p.add_argument(
        "--cross",
        nargs="+",
        metavar="DATA",
        help="also score every split's model on these datasets, whole (trained on DATA, tested on "
        "these): a cross-dataset table in the summary; adding them to a finished benchmark only runs "
        "the evaluations",
    )
    p.add_argument(
        "--cross-scale",
        type=float,
        nargs=2,
        metavar=("WORST", "BEST"),
        help="the scale of the CSV files among --cross (as --scale)",
    )
    p.set_defaults(func=_benchmark)


def _add_search(sub) -> None:
    """pynima search: its options."""
    from pynima.search import DEFAULT_LR_BASE, DEFAULT_LR_HEAD  # light: optuna is imported when a search runs

    p = sub.add_parser(
        "search",
        argument_default=argparse.SUPPRESS,
        help="random search of the two learning rates (Optuna), on validation data only",
        description="Each trial trains on the train part of one split for a few epochs and is scored "
        "by its best validation EMD; the test part is never used. Trials are stored in "
        "SQLite, so rerunning resumes. Writes best_config.json for pynima train --config.",
    )
    _add_train_options(p, out="runs/search", ratios="0.7 0.2 0.1", epochs=3)
    p.add_argument("--trials", type=int, default=20, help="number of completed trials wanted (default 20)")
    p.add_argument("--sampler", choices=["random", "tpe"], default="random", help="default random")
    p.add_argument(
        "--lr-head-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=list(DEFAULT_LR_HEAD),
        help="log-uniform range of the head learning rate (default %(default)s)",
    )
    p.add_argument(
        "--lr-base-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        default=list(DEFAULT_LR_BASE),
        help="log-uniform range of the backbone learning rate (default %(default)s)",
    )
    p.add_argument("--storage", default=None, help="SQLite file of the Optuna study (default OUT/study.db)")
    p.add_argument("--study", default="pynima", help="study name inside the storage (default pynima)")
    p.set_defaults(func=_search)


def _add_report(sub) -> None:
    """pynima report: its options."""
    p = sub.add_parser(
        "report",
        help="a report of a run, benchmark or search: one self-contained HTML file, or "
        "Markdown with its figures in REPORT_files/",
    )
    p.add_argument("run_dir", help="a folder written by pynima train, benchmark or search")
    p.add_argument("--format", choices=["html", "md"], default="html")
    p.add_argument("--out", help="report file (default RUN_DIR/report.html or .md)")
    p.set_defaults(func=_report)


def _add_evaluate(sub) -> None:
    """pynima evaluate: its options."""
    from pynima.config import CROP_MODES, DEFAULT_CROPS, crop_mode

    p = sub.add_parser("evaluate", help="metrics of a model on any supported dataset (or one part of a split)")
    p.add_argument("ckpt", metavar="MODEL", help="a pynima checkpoint, or an exported .onnx")
    p.add_argument(
        "data", help="dataset folder in one of the layouts pynima reads (pynima docs datasets), or a CSV file"
    )
    _add_dataset_options(p)
    p.add_argument("--split-file", help="split.json; without it the whole dataset is scored")
    p.add_argument("--part", choices=["train", "val", "test"], default="test")
    p.add_argument("--out", default="runs/evaluate", help="where metrics.json and scatter.png go")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier evaluation (or a training run's test results) in --out",
    )
    p.add_argument("--crops", type=crop_mode, choices=list(CROP_MODES), default=DEFAULT_CROPS, help=CROPS_HELP)
    p.add_argument(
        "--allow-out-of-range",
        action="store_true",
        help="accept scores outside the scale (TID2013's 0-9, or a CSV's --scale)",
    )
    p.set_defaults(func=_evaluate, format=None, scale=None)


def _add_export(sub) -> None:
    """pynima export: its options."""
    p = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (dynamic batch and image size), optionally int8-quantized",
        description="Writes CKPT as ONNX for the onnx engine of pynima predict, checks it against "
        "PyTorch, and with --int8 also a statically quantized copy. With --data the SRCC "
        "of each exported model is printed, so the cost of int8 is measured.",
    )
    p.add_argument("ckpt")
    p.add_argument("--out", help="ONNX file (default: CKPT with suffix .onnx)")
    p.add_argument(
        "--metadata",
        action="append",
        default=[],
        type=_key_value,
        metavar="KEY=VALUE",
        help="store what the model is in the file (e.g. name=..., data=...), as pynima_KEY; repeatable",
    )
    p.add_argument("--int8", action="store_true", help="also write an int8 model (needs --calibration)")
    p.add_argument("--calibration", metavar="DIR", help="images to calibrate int8 activation ranges on")
    p.add_argument("--calibration-images", type=int, default=64, help="at most this many (default 64)")
    p.add_argument("--data", help="a labelled TID2013-layout dataset: print the SRCC of each exported model on it")
    p.add_argument("--split-file", help="with --data: only this part of the split")
    p.add_argument("--part", choices=["train", "val", "test"], default="test")
    p.set_defaults(func=_export)


def _add_predict(sub) -> None:
    """pynima predict: its options."""
    from pynima.config import CROP_MODES, DEFAULT_CROPS, crop_mode

    p = sub.add_parser(
        "predict",
        help="score images (files and folders, recursively)",
        usage="pynima predict [MODEL] PATHS... [options]",
        description="Score image files, and the image files under folders (recursively). A file "
        "that cannot be scored (corrupt, truncated, too large or too small, unsupported "
        "format) is reported on stderr (skipped: ...) and in the output (an error field "
        "or column, or a table line), and the others are scored. Images smaller than the "
        "224x224 crop on a side are padded and flagged (warning: ...). Scores run from 0 "
        "(worst) to 9 (best), higher is better: the mean of the predicted distribution "
        "of opinion scores on TID2013's scale, and std its spread. With the bundled "
        "model a clean photo scores about 5.5-6.5 and TID2013's heaviest blur about 1.7 "
        "(what else scores what: pynima docs model-card).",
        epilog="exit status: 0 every input was scored; 1 some or all inputs could not be scored, a "
        "path does not exist or a folder holds no images; 2 usage error (bad option, "
        "unreadable model).",
    )
    p.add_argument(
        "paths",
        nargs="+",
        metavar="[MODEL] PATHS",
        help="image files and folders, after an optional MODEL: a checkpoint from pynima train (.ckpt) or "
        "an .onnx file from pynima export, recognised by its suffix; without one, the model bundled "
        "with pynima scores (pynima docs model-card)",
    )
    p.add_argument(
        "--format",
        choices=["table", "json", "jsonl", "csv"],
        default=None,
        help="table (default): mean, std, path; json, jsonl (JSON Lines, one object per image) and csv "
        "add the distribution and the warning and error of each input; every format is written as "
        "the images are scored",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar (it shows only on a terminal anyway)")
    p.add_argument("--batch-size", type=_positive_int, default=16, help="images per network batch (default 16)")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="score on Ray (pip install 'pynima[ray]') into the Parquet file --out: on a new local "
        "instance or the cluster RAY_ADDRESS names, or on ADDRESS (auto, HOST:PORT, "
        "ray://HOST:PORT); PATHS may then be s3://, gs://... URIs too (pynima docs cluster-scoring)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="with --ray: the Parquet file to write (path, mean, std, "
        "distribution, warning, error); refused if it exists",
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="with --ray: scoring actors, one CPU each (default: a pool that grows from 1 while there is "
        "work and there are free CPUs)",
    )
    p.add_argument(
        "--engine",
        choices=["auto", "torch", "onnx", "openvino"],
        default="auto",
        help="auto (default): ONNX Runtime for an .onnx file and for a checkpoint with an up-to-date "
        "export next to it (best.onnx, written by pynima train), PyTorch otherwise; openvino runs "
        "the same export on OpenVINO",
    )
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 arithmetic (torch and openvino engines): faster on CPUs with AMX, not bit-equal "
        "(speed and SRCC cost: pynima docs performance)",
    )
    p.add_argument("--crops", type=crop_mode, choices=list(CROP_MODES), default=DEFAULT_CROPS, help=CROPS_HELP)
    p.set_defaults(func=_predict)


def build_parser() -> argparse.ArgumentParser:
    from pynima import __version__

    parser = Parser(
        prog="pynima",
        description="Blind image quality assessment with NIMA: scores from 0 (worst) to 9 (best); higher is better.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log everything pynima does (on stderr)")
    parser.add_argument("--version", action="version", version=f"pynima {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_docs,
        _add_synth,
        _add_train,
        _add_benchmark,
        _add_search,
        _add_report,
        _add_evaluate,
        _add_export,
        _add_predict,
        _add_serve,
    ):
        add(sub)
    for command in sub.choices.values():  # -v also after the command (pynima predict -v ...)
        command.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="log everything pynima does (on stderr)",
        )
    return parser


def _log_to_stderr(args: argparse.Namespace) -> None:
    """The library logs (logging.getLogger("pynima...")); the CLI shows it on stderr: progress at INFO, nothing but
    warnings with --quiet, everything with -v. Results tables go to stdout."""
    import logging

    class Stderr(logging.StreamHandler):  # whatever sys.stderr is when a message comes (tests replace it)
        stream = property(lambda self: sys.stderr, lambda self, value: None)

    logger = logging.getLogger("pynima")
    if not any(type(h).__name__ == "Stderr" for h in logger.handlers):  # main() may run more than once
        handler = Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    quiet = getattr(args, "quiet", False)
    logger.setLevel(logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO)


def _add_serve(sub) -> None:
    from dataclasses import asdict

    from pynima.config import Connections, Limits
    from pynima.predict import ENGINES

    limits, connections = asdict(Limits()), asdict(Connections())

    p = sub.add_parser(
        "serve",
        help="an HTTP scoring service with dynamic batching and a page",
        description="POST /v1/score (multipart files, or an image/* body), GET / (a page to drop "
        "images on), /docs (OpenAPI), /healthz, /readyz, /v1/model, /metrics "
        "(Prometheus). Binds 127.0.0.1 unless --host says otherwise; SIGTERM finishes "
        "in-flight requests. pynima docs serving",
    )
    p.add_argument("model", nargs="?", help="a checkpoint or an .onnx export (default: the bundled model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument("--engine", choices=list(ENGINES), default="auto", help="as pynima predict (default auto)")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own model (default 1)")
    p.add_argument("--max-batch", type=int, default=32, help="crops per network call at most (default 32)")
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long a request waits for others to share its network call (default 5)",
    )
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=limits["max_body"] / 2**20,
        help=f"request body limit in MiB (default {limits['max_body'] / 2**20:g})",
    )
    p.add_argument(
        "--max-files",
        type=int,
        default=limits["max_files"],
        help=f"images per request at most (default {limits['max_files']})",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=limits["body_timeout"],
        help=f"seconds a client has to send its request body (default {limits['body_timeout']:g})",
    )
    p.add_argument(
        "--max-request-megapixels",
        type=float,
        default=limits["max_request_pixels"] / 1e6,
        help="decoded pixels (width x height, from the headers) of the images of one request at most, "
        f"in millions; over it, 413 (default {limits['max_request_pixels'] / 1e6:g})",
    )
    p.add_argument(
        "--max-inflight-megapixels",
        type=float,
        default=limits["max_inflight_pixels"] / 1e6,
        help="decoded pixels of all requests in flight at most, in millions (about 10 bytes of memory "
        f"each); over it, 503 with Retry-After (default {limits['max_inflight_pixels'] / 1e6:g})",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=connections["max_connections"],
        help=f"open connections at most, per process; beyond it, 503 (default {connections['max_connections']})",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=connections["header_timeout"],
        help="seconds a client has to send each request's headers; then 408 and the connection is closed "
        f"(default {connections['header_timeout']:g})",
    )
    p.add_argument(
        "--keep-alive",
        type=float,
        default=connections["keep_alive"],
        help=f"seconds an idle connection is kept open (default {connections['keep_alive']:g})",
    )
    p.add_argument(
        "--cors",
        nargs="+",
        default=[],
        metavar="ORIGIN",
        help="origins whose pages may call the API (default: none; CORS off, and a POST from a page of "
        "another origin is refused with 403)",
    )
    p.add_argument(
        "--allowed-hosts",
        nargs="+",
        metavar="HOST",
        help="Host headers the server answers to (others: 400), e.g. scores.example.com *.example.com, or "
        "* for any (default: the --host address, with localhost and 127.0.0.1 when it is a loopback "
        "address, and this machine's names and addresses when it is 0.0.0.0)",
    )
    p.set_defaults(func=_serve)


# disk full, over a quota or a file-size limit, read-only, no permission: one line naming the file, exit 3
OS_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
EXIT_OS_ERROR = 3


def _terminate(signum, frame) -> None:
    raise Terminated()


class _NamedStdout:
    """``sys.stdout`` whose refused writes name where it goes (a redirect into a full disk): the error then reads as
    one line naming the file, and the final flush happens inside main, not in Python's shutdown, which would print
    'Exception ignored' and exit 120."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def _refused(self, e: OSError) -> OSError:
        if e.errno in OS_ERRORS and e.filename is None:
            try:
                target = os.readlink(f"/proc/self/fd/{self.stream.fileno()}")
            except (OSError, ValueError, AttributeError):  # not Linux, or not a real file descriptor
                target = "standard output"
            e.filename = STDOUT_REFUSED.format(target=target)
        return e

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as e:
            raise self._refused(e) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as e:
            raise self._refused(e) from None


QUIET_MODULES = r"(lightning|lightning_fabric|torch|torchvision|timm|onnxscript|onnx)(\.|$)"
STDOUT_REFUSED = "{target} (standard output: what was written there is incomplete)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_to_stderr(args)
    # uvicorn has its own SIGTERM handling (it finishes the requests in flight); a handler is the main thread's alone
    if args.command != "serve" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)  # cleanup as for Ctrl-C, then exit 143
    if not args.verbose:  # deprecation notices of the libraries pynima runs on are for their developers
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=QUIET_MODULES)
    stdout = sys.stdout
    sys.stdout = _NamedStdout(stdout)
    try:
        code = args.func(args)  # commands return None, or an exit code when partial failure is possible (predict)
        sys.stdout.flush()
    except PynimaError as e:
        print(f"pynima {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # the core install scores with ONNX models only; the rest are extras
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"pynima {args.command}: error: needs {e.name}, which the core install leaves out: "
            f"pip install 'pynima[{extra}]'",
            file=sys.stderr,
        )
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        if e.errno not in OS_ERRORS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"pynima {args.command}: error: {where}{e.strerror or e} (the system refused it)", file=sys.stderr)
        if STDOUT_REFUSED.format(target="") in (e.filename or ""):  # drop what could not be written, so that
            with contextlib.suppress(OSError, ValueError):  # Python's exit does not retry it
                os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return EXIT_OS_ERROR
    finally:
        sys.stdout = stdout
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())

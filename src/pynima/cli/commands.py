"""The handler of each ``pynima`` command: it imports what the command needs (torch, piq, skimage...) inside, so
``--help`` and scoring with ONNX stay light, and turns its arguments into one library call.
"""

from __future__ import annotations

import argparse
import difflib
import sys

from pynima.cli.output import progress_bar, result_writer
from pynima.errors import PynimaError

__all__ = [
    "RESUME_OPTIONS",
    "RESUME_OVERRIDES",
    "benchmark_command",
    "config_from_args",
    "docs_command",
    "evaluate_command",
    "export_command",
    "predict_command",
    "report_command",
    "search_command",
    "serve_command",
    "synth_command",
    "train_command",
]


def synth_command(args: argparse.Namespace) -> None:
    """pynima synth: re-synthesized TID2013-layout data from reference photos."""
    from pynima.synth.build import synthesize

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


def docs_command(args: argparse.Namespace) -> None:
    """pynima docs [TOPIC]: the documentation shipped inside the package (a pip install has no repository to read
    docs/ from): the list of topics, or one topic's Markdown on stdout.
    """
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
    given on the command line (omitted options are absent from ``args``: see add_train_options).
    """
    from dataclasses import fields

    from pynima.config import TrainConfig
    from pynima.datasets.splits import split_ratios

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


def train_command(args: argparse.Namespace) -> None:
    """pynima train: one model on one split (or a run resumed from its last checkpoint)."""
    from pathlib import Path

    from pynima.config import TrainConfig
    from pynima.training.train import process_rank, train

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
        from pynima.evaluation.evaluate import format_table
        from pynima.files import read_json

        print(f"test set ({out / 'metrics.json'}):\n{format_table(read_json(out / 'metrics.json'))}")
    print(f"run directory: {out} (best.ckpt, last.ckpt, metrics.csv, loss_curve.png, metrics.json, scatter.png)")


def benchmark_command(args: argparse.Namespace) -> None:
    """pynima benchmark: K seeded splits and their summary table."""
    from pynima.datasets.splits import split_ratios
    from pynima.evaluation.summary import format_summary
    from pynima.training.benchmark import run_benchmark

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


def search_command(args: argparse.Namespace) -> None:
    """pynima search: the learning-rate search and its trials table."""
    from pathlib import Path

    from pynima.training.search import format_trials, run_search

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


def report_command(args: argparse.Namespace) -> None:
    """pynima report: a run's or benchmark's report (HTML or Markdown)."""
    from pynima.evaluation.report import write_report

    print(f"report: {write_report(args.run_dir, fmt=args.format, out=args.out)}")


def evaluate_command(args: argparse.Namespace) -> None:
    """pynima evaluate: a checkpoint on a dataset's test part (or all of it), with intervals."""
    from pathlib import Path

    from pynima.datasets.splits import read_split
    from pynima.evaluation.evaluate import evaluate_checkpoint, format_table

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


def export_command(args: argparse.Namespace) -> None:
    """pynima export: a checkpoint as an ONNX file with its metadata, checked against PyTorch."""
    import numpy as np

    from pynima.scoring.engines import TorchEngine
    from pynima.scoring.export import export_onnx, quantize_int8
    from pynima.scoring.models import load
    from pynima.scoring.paths import iter_image_paths
    from pynima.scoring.scorer import Scorer

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

        from pynima.datasets.registry import read_dataset
        from pynima.datasets.splits import apply_split, read_split

        records = read_dataset(args.data).records
        if args.split_file:
            records = apply_split(records, read_split(args.split_file), args.part)
        mos = np.array([r.mos for r in records])
        for name, path in models.items():
            scorer = load(path)
            pred = np.array([s.mean for _, s, _ in scorer.score_paths([r.path for r in records], batch_size=32)])
            print(f"SRCC {name} on {len(records)} images: {stats.spearmanr(pred, mos).statistic:.4f}")


def serve_command(args: argparse.Namespace) -> None:
    """pynima serve: the HTTP service with its limits."""
    from pynima.config import Connections, Limits
    from pynima.serving.server import serve

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


def predict_command(args: argparse.Namespace) -> int:
    """Score files and folders; every input gets a row (a score or an error). Exit 0 only if all were scored.

    Paths are shown by display_name (one printable line: a newline, an ESC or a byte that is not UTF-8 escaped) in the
    table, the CSV and the stderr lines; the JSON keeps the path as os.fsdecode gives it (lossless, in JSON escapes).
    """
    from pathlib import Path

    from pynima.images import display_name as shown
    from pynima.scoring.models import MODEL_SUFFIXES, load
    from pynima.scoring.results import Result

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
    write = result_writer(args.format)
    bar = progress_bar(args.quiet)
    for path, score, error in scorer.score_paths(paths, batch_size=args.batch_size):
        total += 1
        bar.update()
        row = Result.of(path, score, error)
        if row.error:
            failed += 1
            bar.write(f"skipped: {shown(path)}: {shown(row.error)}", file=sys.stderr)
        if row.warning:
            bar.write(f"warning: {shown(path)}: {shown(row.warning)}", file=sys.stderr)
        write(row)
    write(None)
    bar.close()
    if failed:
        print(f"{failed} of {total} input(s) could not be scored (see the skipped: lines)", file=sys.stderr)
    return 1 if failed or not total else 0


def _predict_on_ray(args: argparse.Namespace, model: str | None, paths: list[str]) -> int:
    """pynima predict --ray: score on Ray into a Parquet file (docs/cluster-scoring.md); the exit status of
    pynima predict.
    """
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

    from pynima.images import display_name as shown
    from pynima.scoring.cluster import init, read_failures, score_dataset, write_parquet

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

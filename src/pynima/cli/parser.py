"""The ``pynima`` argument parser, one ``add_<command>`` function per subcommand; defaults and choices come from
``pynima.config``.
"""

from __future__ import annotations

import argparse
import difflib
import re

from pynima.cli.commands import (
    benchmark_command,
    docs_command,
    evaluate_command,
    export_command,
    predict_command,
    report_command,
    search_command,
    serve_command,
    synth_command,
    train_command,
)
from pynima.cli.options import add_dataset_options, add_distributed_options, add_train_options, key_value
from pynima.cli.scoring_options import CROPS_HELP, add_predict_options, add_serve_options

__all__ = ["Parser", "build_parser"]


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped command, choice or option. Python 3.14's ``suggest_on_error``
    does this for commands and choices only, and pynima supports 3.11, hence these few lines.
    """

    def parse_known_args(self, args=None, namespace=None):
        """argparse's parse_known_args; an unknown option close to a known one is an error that names it."""
        namespace, extras = super().parse_known_args(args, namespace)
        names = [s for action in self._actions for s in action.option_strings]  # argument groups' too
        for extra in extras:  # a sub-command's parser sees its own options: suggest from them, with its usage
            close = difflib.get_close_matches(extra.split("=")[0], names, n=1) if extra[:1] == "-" else []
            if close:
                self.error(f"unrecognized argument: {extra} (did you mean {close[0]}?)")
        return namespace, extras

    def error(self, message: str):
        """argparse's usage error, with the closest choice for an invalid one."""
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
    p.set_defaults(func=docs_command)


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
    p.set_defaults(func=synth_command)


def _add_train(sub) -> None:
    """pynima train: its options."""
    p = sub.add_parser(
        "train",
        help="train NIMA on a TID2013-layout dataset, then evaluate on its test split",
        argument_default=argparse.SUPPRESS,
    )
    add_train_options(p, out="runs/nima", ratios="0.7 0.2 0.1", epochs=100)
    add_distributed_options(p)
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
    p.set_defaults(func=train_command)


def _add_benchmark(sub) -> None:
    """pynima benchmark: its options."""
    p = sub.add_parser(
        "benchmark",
        argument_default=argparse.SUPPRESS,
        help="train on K seeded splits (by reference image) and report the median and spread",
        description="K seeded splits, one model each, a results table per split, the median, the "
        "interquartile range and a 95% interval over splits and images. Resumes: rerun "
        "the same command to continue after an interruption. Any row reruns alone with "
        "pynima train --config OUT/split_NN/config.json.",
    )
    add_train_options(p, out="runs/benchmark", ratios="0.8 0.2", epochs=100)
    add_distributed_options(p)
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
    p.set_defaults(func=benchmark_command)


def _add_search(sub) -> None:
    """pynima search: its options."""
    from pynima.training.search import DEFAULT_LR_BASE, DEFAULT_LR_HEAD  # light: optuna is imported when a search runs

    p = sub.add_parser(
        "search",
        argument_default=argparse.SUPPRESS,
        help="random search of the two learning rates (Optuna), on validation data only",
        description="Each trial trains on the train part of one split for a few epochs and is scored "
        "by its best validation EMD; the test part is never used. Trials are stored in "
        "SQLite, so rerunning resumes. Writes best_config.json for pynima train --config.",
    )
    add_train_options(p, out="runs/search", ratios="0.7 0.2 0.1", epochs=3)
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
    p.set_defaults(func=search_command)


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
    p.set_defaults(func=report_command)


def _add_evaluate(sub) -> None:
    """pynima evaluate: its options."""
    from pynima.config import CROP_MODES, DEFAULT_CROPS, crop_mode

    p = sub.add_parser("evaluate", help="metrics of a model on any supported dataset (or one part of a split)")
    p.add_argument("ckpt", metavar="MODEL", help="a pynima checkpoint, or an exported .onnx")
    p.add_argument(
        "data", help="dataset folder in one of the layouts pynima reads (pynima docs datasets), or a CSV file"
    )
    add_dataset_options(p)
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
    p.set_defaults(func=evaluate_command, format=None, scale=None)


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
        type=key_value,
        metavar="KEY=VALUE",
        help="store what the model is in the file (e.g. name=..., data=...), as pynima_KEY; repeatable",
    )
    p.add_argument("--int8", action="store_true", help="also write an int8 model (needs --calibration)")
    p.add_argument("--calibration", metavar="DIR", help="images to calibrate int8 activation ranges on")
    p.add_argument("--calibration-images", type=int, default=64, help="at most this many (default 64)")
    p.add_argument("--data", help="a labelled TID2013-layout dataset: print the SRCC of each exported model on it")
    p.add_argument("--split-file", help="with --data: only this part of the split")
    p.add_argument("--part", choices=["train", "val", "test"], default="test")
    p.set_defaults(func=export_command)


def _add_predict(sub) -> None:
    """pynima predict: its options."""
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
    add_predict_options(p)
    p.set_defaults(func=predict_command)


def build_parser() -> argparse.ArgumentParser:
    """The ``pynima`` parser: global options and one sub-parser per command, each bound to its handler."""
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


def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="an HTTP scoring service with dynamic batching and a page",
        description="POST /v1/score (multipart files, or an image/* body), GET / (a page to drop "
        "images on), /docs (OpenAPI), /healthz, /readyz, /v1/model, /metrics "
        "(Prometheus). Binds 127.0.0.1 unless --host says otherwise; SIGTERM finishes "
        "in-flight requests. pynima docs serving",
    )
    p.add_argument("model", nargs="?", help="a checkpoint or an .onnx export (default: the bundled model)")
    add_serve_options(p)
    p.set_defaults(func=serve_command)

"""The ``pynima`` command line. Heavy modules (torch, piq, skimage) are imported inside commands, so ``--help`` is
instant."""

from __future__ import annotations

import argparse
import sys

from pynima.errors import PynimaError


def _synth(args: argparse.Namespace) -> None:
    from pynima.synth import synthesize

    r = synthesize(args.out, refs=args.refs, mos_table=args.mos_table, std_table=args.std_table, seed=args.seed,
                   workers=args.workers, progress=not args.quiet, force=args.force)
    state = "up to date (cached)" if r.cached else f"written in {r.seconds:.1f} s"
    print(f"{r.out}: {r.n_images} distorted images of {r.n_refs} references, labels from {r.labels}; {state}")


def _train(args: argparse.Namespace) -> None:
    from pynima.train import TrainConfig, train

    cfg = TrainConfig(data=args.data, out=args.out, backbone=args.backbone, weights=args.weights, split=args.split,
                      split_file=args.split_file, labels=args.labels, vote_std=args.vote_std,
                      optimizer=args.optimizer, lr_head=args.lr_head, lr_base=args.lr_base, epochs=args.epochs,
                      patience=args.patience, batch_size=args.batch_size, num_workers=args.num_workers,
                      seed=args.seed)
    out = train(cfg, progress=not args.quiet)
    print(f"run directory: {out} (best.ckpt, last.ckpt, metrics.csv, loss_curve.png, metrics.json, scatter.png)")


def _evaluate(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from pynima.evaluate import evaluate_checkpoint

    split = json.loads(Path(args.split_file).read_text()) if args.split_file else None
    evaluate_checkpoint(args.ckpt, args.data, args.out, split=split, part=args.part, num_workers=args.num_workers)


def _predict(args: argparse.Namespace) -> None:
    import csv
    import json

    from pynima.predict import load

    scorer = load(args.ckpt)
    rows, failed = [], 0
    writer = csv.writer(sys.stdout) if args.format == "csv" else None
    if writer:
        writer.writerow(["path", "mean", "std"] + [f"p{k}" for k in range(10)])
    for path, score, error in scorer.score_paths(args.paths, batch_size=args.batch_size):
        if error:
            failed += 1
            print(f"skipped: {error}", file=sys.stderr)
            continue
        if args.format == "json":
            rows.append({"path": str(path), "mean": score.mean, "std": score.std,
                         "distribution": list(score.distribution)})
        elif writer:
            writer.writerow([path, f"{score.mean:.4f}", f"{score.std:.4f}"] + [f"{v:.5f}" for v in score.distribution])
        else:
            print(f"{score.mean:6.3f}  {score.std:5.3f}  {path}")
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    if failed:
        print(f"{failed} file(s) could not be read and were skipped", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pynima", description="Blind image quality assessment with NIMA.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a TID2013-layout dataset (24 distortions x 5 levels per reference)",
                       description="Write a TID2013-layout dataset: reference_images/, distorted_images/, "
                                   "mos_with_names.txt, mos_std.txt. Cached: rerunning with the same inputs is "
                                   "instant.")
    p.add_argument("out", help="output folder")
    p.add_argument("--refs", metavar="DIR", help="reference photos, numbered in sorted file-name order "
                                                "(default: photos embedded in installed packages)")
    p.add_argument("--mos-table", metavar="FILE", help="TID2013 mos_with_names.txt: label image iRR_TT_L with "
                                                       "the human MOS of the same reference, type and level")
    p.add_argument("--std-table", metavar="FILE", help="TID2013 mos_std.txt (same order as --mos-table)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the distortions (default 0)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    p.add_argument("--force", action="store_true", help="regenerate even if the cache is valid")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    p = sub.add_parser("train", help="train NIMA on a TID2013-layout dataset, then evaluate on its test split")
    p.add_argument("data", help="dataset root (TID2013 layout, e.g. from pynima synth)")
    p.add_argument("--out", default="runs/nima", help="run directory (default runs/nima)")
    p.add_argument("--backbone", default="tf_efficientnet_lite0",
                   help="tf_efficientnet_lite0/1/2 (offline weights), mobilenet_v2, mobilenetv3_large_100, resnet50, "
                        "vgg16 (need --weights offline)")
    p.add_argument("--weights", help="ImageNet weights file for the backbone")
    p.add_argument("--split", choices=["reference", "random"], default="reference",
                   help="70/20/10 by reference image (default; no scene in two sets) or by image (leaky; for "
                        "comparison with the reference implementation)")
    p.add_argument("--split-file", help="reuse a split.json from an earlier run")
    p.add_argument("--labels", choices=["maxent", "mean-only"], default="maxent",
                   help="target distributions: max-entropy from mean and std (default) or from the mean only")
    p.add_argument("--vote-std", choices=["sem", "fixed", "raw"], default="sem",
                   help="how TID2013's mos_std becomes a vote std (see pynima.labels.vote_std)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    p.add_argument("--lr-head", type=float, help="default 3.7e-5 (adam) / 3e-6 (sgd)")
    p.add_argument("--lr-base", type=float, help="default 1.4e-4 (adam) / 3e-7 (sgd)")
    p.add_argument("--epochs", type=int, default=100, help="maximum epochs (default 100)")
    p.add_argument("--patience", type=int, default=10, help="early stopping patience on validation EMD (default 10)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="metrics of a checkpoint on a dataset (or one part of a split)")
    p.add_argument("ckpt")
    p.add_argument("data")
    p.add_argument("--split-file", help="split.json; without it the whole dataset is scored")
    p.add_argument("--part", choices=["train", "val", "test"], default="test")
    p.add_argument("--out", default="runs/evaluate", help="where metrics.json and scatter.png go")
    p.add_argument("--num-workers", type=int, default=2)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="score images (files and folders, recursively)")
    p.add_argument("ckpt")
    p.add_argument("paths", nargs="+")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except PynimaError as e:
        print(f"pynima {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

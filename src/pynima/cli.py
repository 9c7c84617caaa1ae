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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pynima", description="Blind image quality assessment with NIMA.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a TID2013-layout dataset (24 distortions x 5 levels per reference)",
                       description="Write a TID2013-layout dataset: reference_images/, distorted_images/, "
                                   "mos_with_names.txt, mos_std.txt. Cached: rerunning with the same inputs is instant.")
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

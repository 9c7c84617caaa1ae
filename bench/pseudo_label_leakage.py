"""Does fitting the pseudo-label mapping on all 19 references leak the test references into a benchmark?

``pynima synth`` labels pretraining images by FSIMc mapped to TID2013's scale with one logistic
(``pynima.synth.build.PSEUDO_MOS_LOGISTIC``), fitted on the human MOS of all 19 re-synthesized references. A benchmark
whose test references were among those 19 could in principle profit from that. This refits the logistic on each
benchmark split's non-test references only and prints how far the pseudo-labels of the pretraining images move
against the shipped mapping. Both mappings are monotone, so the order of the pseudo-labels is identical; only their
scale can differ.

    python bench/pseudo_label_leakage.py runs/BENCH/split_*/split.json [--data data/tid2013-resynth]
        [--pseudo data/pristine-pseudo]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from synth_fidelity import fit_logistic, logistic

from pynima.datasets.tid2013 import read_tid2013
from pynima.files import read_json
from pynima.images import load_rgb
from pynima.synth.build import PSEUDO_MOS_LOGISTIC


def fsimc_of_pseudo_labels(mos: np.ndarray) -> np.ndarray:
    """FSIMc of each pretraining image, recovered by inverting the shipped logistic (it is strictly monotone)."""
    p = PSEUDO_MOS_LOGISTIC
    return p["mid"] - p["scale"] * np.log((p["hi"] - p["lo"]) / (mos - p["lo"]) - 1)


def fsimc(records) -> np.ndarray:
    """FSIMc of each record against its reference image (the labelled dataset's reference_images/)."""
    from pynima.synth.fullref import fr_scores

    q = np.zeros(len(records))
    by_ref: dict = {}
    for i, r in enumerate(records):
        by_ref.setdefault(r.reference, []).append(i)
    for ref, idx in by_ref.items():
        q[idx] = fr_scores(load_rgb(ref), [load_rgb(records[i].path) for i in idx], ["fsimc"])["fsimc"]
    return q


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("splits", nargs="+", type=Path, help="split.json files of a benchmark")
    ap.add_argument("--data", type=Path, default=Path("data/tid2013-resynth"))
    ap.add_argument("--pseudo", type=Path, default=Path("data/pristine-pseudo"))
    args = ap.parse_args()

    records = read_tid2013(args.data)
    q = fsimc(records)
    mos = np.array([r.mos for r in records])
    pseudo = np.array([r.mos for r in read_tid2013(args.pseudo)])
    q_pseudo = fsimc_of_pseudo_labels(pseudo)
    print(
        f"{len(records)} labelled images; {len(pseudo)} pseudo-labelled images (pseudo-MOS {pseudo.min():.2f}-"
        f"{pseudo.max():.2f}, std {pseudo.std():.2f})"
    )
    shipped = logistic(q_pseudo, **PSEUDO_MOS_LOGISTIC)
    print(f"shipped mapping reproduces the pseudo-labels to {np.abs(shipped - pseudo).max():.1e}")
    print("| split | test references | mapping fitted on the other references | max abs change | mean abs change |")
    print("|---|---|---|---|---|")
    params = fit_logistic(q, mos)
    change = np.abs(logistic(q_pseudo, **params) - pseudo)
    print(f"| (refit on all) | - | {params} | {change.max():.3f} | {change.mean():.3f} |")
    for path in args.splits:
        split = read_json(path)
        test = {n.lower() for n in split["test"]}
        keep = np.array([r.path.name.lower() not in test for r in records])
        refs = sorted({r.ref for r, k in zip(records, keep, strict=True) if not k})
        params = fit_logistic(q[keep], mos[keep])
        change = np.abs(logistic(q_pseudo, **params) - pseudo)
        print(
            f"| {path.parent.name} | {' '.join(map(str, refs))} | {params} | {change.max():.3f} | {change.mean():.3f} |"
        )


if __name__ == "__main__":
    main()

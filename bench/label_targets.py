"""What each TID2013 mos_std -> vote std choice does to the training targets (pynima.model.labels).

    python bench/label_targets.py [--labels DIR]     # default ../shared/data/tid2013-labels

Prints, per choice, the vote std asked for, the std the max-entropy target actually has (the grid cannot go below
the two-bin minimum), the mass of the largest bin, and the mean EMD between targets built two ways, so the size of
the choice is visible before any training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pynima.datasets.tid2013 import read_labels
from pynima.model.labels import moments, targets, vote_std
from pynima.model.losses import emd

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=Path, default=SHARED / "tid2013-labels")
    args = ap.parse_args()
    labs = read_labels(args.labels / "mos_with_names.txt", args.labels / "mos_std.txt")
    mos = np.array([lab.mos for lab in labs])
    mos_std = np.array([lab.mos_std for lab in labs])
    built = {"mean-only (geometric)": targets(mos, None)}
    for mode in ("raw", "sem", "fixed"):
        built[f"max-ent, vote std '{mode}'"] = targets(mos, vote_std(mos_std, mode))
    print(f"{len(labs)} TID2013 labels; mos_std median {np.median(mos_std):.3f}\n")
    print(f"{'targets':32s} {'asked std':>9s} {'target std':>10s} {'peak mass':>9s} {'mean err':>9s}")
    for name, t in built.items():
        m, s = moments(t)
        mode = name.split("'")[1] if "'" in name else None
        asked = f"{np.median(vote_std(mos_std, mode)):.3f}" if mode else "-"
        print(f"{name:32s} {asked:>9s} {np.median(s):10.3f} {np.median(t.max(1)):9.3f} {np.abs(m - mos).max():9.1e}")
    ref = torch.tensor(built["max-ent, vote std 'sem'"])
    print("\nmean EMD to the default targets (max-ent, 'sem'):")
    for name, t in built.items():
        print(f"  {name:32s} {emd(torch.tensor(t), ref).item():.4f}")


if __name__ == "__main__":
    main()

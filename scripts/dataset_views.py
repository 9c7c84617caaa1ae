"""Write a TID2013-layout dataset (e.g. from ``pynima synth``) again in other release layouts, for the offline
cross-dataset table of docs/results.md: the same images (linked, not copied) and the same labels, read back through
another reader. A model's SRCC on every view of one dataset must be equal; a difference is a reader bug.

    python scripts/dataset_views.py data/pristine-pseudo --out data/views

writes OUT/NAME.csv (the generic CSV reader; scale 0-9: ``--scale 0 9``) and OUT/NAME-kadid/ (KADID-10k's layout:
dmos.csv on its 1-5 scale, images/I01_01_01.png). Each image's std becomes the std of the votes as
``pynima.model.labels.vote_std`` reads TID2013's ``mos_std`` (the default "sem"), so the max-entropy targets are the
same in every view. KADID's names need .png: the links keep the .bmp content under a .png name (Pillow reads by
content).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from pynima.datasets.tid2013 import read_tid2013
from pynima.files import atomic_path
from pynima.model.labels import vote_std


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a TID2013-layout dataset")
    parser.add_argument("--out", type=Path, default=Path("data/views"))
    args = parser.parse_args(argv)
    records = read_tid2013(args.data)
    name = args.data.resolve().name
    args.out.mkdir(parents=True, exist_ok=True)
    sd = vote_std([r.mos_std for r in records])

    table = args.out / f"{name}.csv"
    with atomic_path(table) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "mos", "std", "ref", "type", "level"])
        for r, s in zip(records, sd, strict=True):
            w.writerow(
                [
                    os.path.relpath(r.path.resolve(), args.out.resolve()),
                    f"{r.mos:.6f}",
                    f"{s:.6f}",
                    r.ref,
                    r.kind,
                    r.level,
                ]
            )

    kadid = args.out / f"{name}-kadid"
    (kadid / "images").mkdir(parents=True, exist_ok=True)
    with atomic_path(kadid / "dmos.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dist_img", "ref_img", "dmos", "var"])
        for r, s in zip(records, sd, strict=True):  # 0-9 -> KADID's 1-5
            image = f"I{r.ref:02d}_{r.kind:02d}_{r.level:02d}.png"
            link = kadid / "images" / image
            if not link.is_symlink():
                link.symlink_to(os.path.relpath(r.path.resolve(), link.parent.resolve()))
            w.writerow([image, f"I{r.ref:02d}.png", f"{1 + r.mos * 4 / 9:.6f}", f"{s * 4 / 9:.6f}"])
    print(f"{table} (pynima ... {table} --scale 0 9)\n{kadid}/ (KADID-10k layout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

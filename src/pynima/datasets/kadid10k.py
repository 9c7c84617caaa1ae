"""KADID-10k (Lin, Hosu and Saupe 2019): 81 references, 25 distortion types, 5 levels, MOS 1-5 in ``dmos.csv``."""

from __future__ import annotations

import re
from pathlib import Path

from pynima.datasets._tables import csv_rows, files_by_name, finish_records, make_record, require_columns, to_float
from pynima.datasets.record import Dataset, Scale
from pynima.datasets.registry import register

__all__ = ["KADID_TYPES", "SCALE", "read_kadid10k"]

# the 25 types of KADID-10k (Lin, Hosu and Saupe 2019, Table 1), numbered as in its file names
KADID_TYPES = (
    "Gaussian blur",
    "Lens blur",
    "Motion blur",
    "Color diffusion",
    "Color shift",
    "Color quantization",
    "Color saturation 1",
    "Color saturation 2",
    "JPEG2000",
    "JPEG",
    "White noise",
    "White noise in color component",
    "Impulse noise",
    "Multiplicative noise",
    "Denoise",
    "Brighten",
    "Darken",
    "Mean shift",
    "Jitter",
    "Non-eccentricity patch",
    "Pixelate",
    "Quantization",
    "Color block",
    "High sharpen",
    "Contrast change",
)


_KADID_NAME = re.compile(r"^i(\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)


SCALE = Scale(1.0, 5.0)


@register("kadid10k", signatures=("dmos.csv",), scale=SCALE)
def read_kadid10k(root: Path) -> Dataset:
    """KADID-10k: ``dmos.csv`` (dist_img, ref_img, dmos, var) and ``images/`` (I01_01_01.png: reference, type,
    level). Its "dmos" is a mean opinion score on 1-5, higher better, despite the name (the release page says so), and
    its "var" is the standard deviation of the votes, not their variance (4.57 with 0.496 is votes split 57/43
    between 4 and 5: sqrt(0.57 * 0.43) = 0.495).
    """
    scale = SCALE
    label_file = root / "dmos.csv"
    header, rows = csv_rows(label_file)
    require_columns(label_file, header, ("dist_img", "ref_img", "dmos"))
    images = files_by_name(root / "images")
    records, problems = [], []
    for line, row in rows:
        name, score, sd = row["dist_img"], to_float(row["dmos"]), to_float(row.get("var", ""))
        m = _KADID_NAME.match(name)
        if m is None or score is None or (row.get("var") and (sd is None or sd < 0)):
            problems.append(
                f"{label_file} line {line}: expected 'I01_01_01.png,I01.png,<dmos>,<var>', got "
                f"{','.join(row.values())!r}"
            )
            continue
        path = images.get(name.lower())
        if path is None:
            problems.append(f"{root / 'images' / name} ({label_file.name} line {line}): no such image")
            continue
        ref, kind, level = (int(g) for g in m.groups())
        records.append(
            make_record(path, score, scale, ref, kind, level, sd=sd, reference=images.get(row["ref_img"].lower()))
        )
    return Dataset(
        "kadid10k",
        root,
        finish_records(records, problems, label_file),
        scale,
        authentic=False,
        type_names=dict(enumerate(KADID_TYPES, start=1)),
    )

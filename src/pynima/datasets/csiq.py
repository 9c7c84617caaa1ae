"""CSIQ (Larson and Chandler 2010): 30 references, 6 distortion types, DMOS 0-1 (lower is better)."""

from __future__ import annotations

from pathlib import Path

from pynima.datasets._tables import csv_sheet, files_by_name, finish_records, make_record, sheet_rows, to_float
from pynima.datasets.record import Dataset, Scale
from pynima.datasets.registry import register

__all__ = ["CSIQ_COLUMNS", "CSIQ_TYPES", "SCALE", "read_csiq"]

# the DMOS sheet's dst_type -> (folder in dst_imgs/, the type's token in file names): 1600.AWGN.1.png in awgn/
CSIQ_TYPES = {
    "noise": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}


CSIQ_COLUMNS = ("image", "dst_type", "dst_lev", "dmos")


SCALE = Scale(1.0, 0.0, "DMOS")


@register("csiq", signatures=("csiq.DMOS.xlsx", "csiq.DMOS.csv", "dst_imgs"), scale=SCALE)
def read_csiq(root: Path) -> Dataset:
    """CSIQ: ``csiq.DMOS.xlsx`` (sheet ``all_by_image``, header on row 4: image, dst_idx, dst_type, dst_lev,
    dmos_std, dmos; or ``csiq.DMOS.csv``, that sheet saved as CSV), ``dst_imgs/<type>/<image>.<TYPE>.<level>.png``
    and ``src_imgs/<image>.png``. 866 images of 30 references, 6 types; DMOS 0-1, lower is better. Folder and file
    names are matched case-insensitively (mirrors differ); the sheet, not the folder, says which images are rated.
    """
    scale = SCALE
    xlsx, csv_file = root / "csiq.DMOS.xlsx", root / "csiq.DMOS.csv"
    if xlsx.is_file() or not csv_file.is_file():
        label_file, rows = xlsx, sheet_rows(xlsx, "all_by_image", CSIQ_COLUMNS)
    else:
        label_file, rows = csv_file, csv_sheet(csv_file, CSIQ_COLUMNS)
    images, references = files_by_name(root / "dst_imgs", recursive=True), files_by_name(root / "src_imgs")
    records, problems = [], []
    for number, row in rows:
        image_name = row["image"]
        if isinstance(image_name, float) and image_name.is_integer():
            image_name = int(image_name)  # the sheet stores the image "1600" as a number
        image_name = str(image_name).strip() if image_name is not None else ""
        kind = CSIQ_TYPES.get(str(row["dst_type"] or "").strip().lower())
        level, score, sd = to_float(row["dst_lev"]), to_float(row["dmos"]), to_float(row.get("dmos_std"))
        where = f"{label_file} row {number}"
        if not image_name or kind is None or level is None or not level.is_integer() or score is None:
            problems.append(
                f"{where}: expected an image, a type ({', '.join(CSIQ_TYPES)}), a whole level and a "
                f"DMOS, got {[row[c] for c in CSIQ_COLUMNS]}"
            )
            continue
        folder, token = kind
        rel = f"{folder}/{image_name}.{token}.{int(level)}.png"
        path = images.get(rel.lower())
        if path is None:
            problems.append(f"{root / 'dst_imgs' / rel} ({label_file.name} row {number}): no such image")
            continue
        records.append(
            make_record(
                path,
                score,
                scale,
                image_name,
                kind=folder,
                level=int(level),
                sd=sd,
                name=rel,
                reference=references.get(f"{image_name}.png".lower()),
            )
        )
    return Dataset(
        "csiq",
        root,
        finish_records(records, problems, label_file),
        scale,
        authentic=False,
        type_names={
            "awgn": "Additive white Gaussian noise",
            "jpeg": "JPEG",
            "jpeg2000": "JPEG2000",
            "fnoise": "Additive pink (1/f) noise",
            "blur": "Gaussian blur",
            "contrast": "Global contrast decrement",
        },
    )

"""LIVE In the Wild Challenge (Ghadiyaram and Bovik 2016): authentic camera photos, MOS 0-100 in ``Data/*.mat``."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pynima.datasets._tables import cell_strings, files_by_name, finish_records, make_record, read_mat, to_float
from pynima.datasets.record import Dataset, Scale
from pynima.datasets.registry import register
from pynima.errors import DatasetError

__all__ = ["SCALE", "read_livec"]

log = logging.getLogger(__name__)


SCALE = Scale(0.0, 100.0)


@register("livec", signatures=("Data/AllMOS_release.mat",), scale=SCALE)
def read_livec(root: Path) -> Dataset:
    """LIVE In the Wild Image Quality Challenge: ``Images/``, ``Data/AllImages_release.mat`` (``AllImages_release``,
    1169x1 cell of names), ``Data/AllMOS_release.mat`` and ``Data/AllStdDev_release.mat`` (1x1169; MOS 0-100, higher
    better; the std of the ~175 ratings per image). The release's first 7 entries, t1.bmp-t7.bmp in
    ``Images/trainingImages/``, were shown to subjects to train them and are not part of the database's 1162 images:
    they are left out, as the release's readme and every published protocol do.
    """
    scale = SCALE
    data = root / "Data"
    names = cell_strings(read_mat(data / "AllImages_release.mat", ("AllImages_release",))["AllImages_release"])
    mos = read_mat(data / "AllMOS_release.mat", ("AllMOS_release",))["AllMOS_release"].ravel()
    std = read_mat(data / "AllStdDev_release.mat", ("AllStdDev_release",))["AllStdDev_release"].ravel()
    if not len(names) == len(mos) == len(std):
        raise DatasetError(
            f"{data}: AllImages_release, AllMOS_release and AllStdDev_release have {len(names)}, "
            f"{len(mos)} and {len(std)} entries; they must match"
        )
    images, training = files_by_name(root / "Images"), files_by_name(root / "Images" / "trainingImages")
    records, problems, left_out = [], [], 0
    for i, (name, score, sd) in enumerate(zip(names, mos, std, strict=True), start=1):
        if name.lower() in training or (name.lower() not in images and re.fullmatch(r"t\d+\.bmp", name.lower())):
            left_out += 1
            continue
        path = images.get(name.lower())
        score, sd = to_float(score), to_float(sd)
        if path is None or score is None:
            problems.append(
                f"{root / 'Images' / name} (entry {i} of AllImages_release.mat): "
                + ("no such image" if path is None else "MOS is not a number")
            )
            continue
        records.append(make_record(path, score, scale, ref=name, sd=sd if sd is not None and sd >= 0 else None))
    log.info("%s: %d subject-training image(s) (Images/trainingImages) left out", root, left_out)
    return Dataset(
        "livec", root, finish_records(records, problems, data / "AllImages_release.mat"), scale, authentic=True
    )

"""LIVE Release 2 (Sheikh et al. 2006): five distortion folders, DMOS 0-100 (lower is better) in ``.mat`` files."""

from __future__ import annotations

from pathlib import Path

from pynima.datasets._tables import cell_strings, files_by_name, finish_records, make_record, read_mat, to_float
from pynima.datasets.record import Dataset, Scale
from pynima.datasets.registry import register
from pynima.errors import DatasetError

__all__ = ["LIVE_FOLDERS", "LIVE_TYPES", "SCALE", "read_live"]

# LIVE Release 2's folders in the order of its dmos vector, with how many entries each has (reference copies included)
LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


LIVE_TYPES = {
    "jp2k": "JPEG2000",
    "jpeg": "JPEG",
    "wn": "White noise",
    "gblur": "Gaussian blur",
    "fastfading": "Fast fading (JPEG2000 over a Rayleigh channel)",
}


SCALE = Scale(100.0, 0.0, "DMOS")


@register("live", signatures=("refnames_all.mat", "dmos_realigned.mat", "dmos.mat"), scale=SCALE)
def read_live(root: Path) -> Dataset:
    """LIVE Release 2: ``jp2k/ jpeg/ wn/ gblur/ fastfading/`` (img1.bmp...), ``refimgs/``, ``refnames_all.mat``
    (``refnames_all``, 1x982 cell: each entry's reference) and the DMOS: ``dmos_realigned.mat`` (``dmos_new``,
    ``dmos_std``, ``orgs``; the release's update, used when present) or ``dmos.mat`` (``dmos``, ``orgs``). The 982
    entries run through the folders in LIVE_FOLDERS order; ``orgs`` == 1 marks the 203 copies of reference images
    inside the folders, which are left out (779 distorted images). DMOS: lower is better, about 0-100.
    """
    scale = SCALE
    realigned = root / "dmos_realigned.mat"
    if realigned.is_file():
        mat = read_mat(realigned, ("dmos_new", "orgs"), optional=("dmos_std",))
        dmos, orgs, source = mat["dmos_new"].ravel(), mat["orgs"].ravel(), realigned
        std = mat["dmos_std"].ravel() if "dmos_std" in mat else None
    else:
        source = root / "dmos.mat"
        mat = read_mat(source, ("dmos", "orgs"))
        dmos, orgs, std = mat["dmos"].ravel(), mat["orgs"].ravel(), None
    refnames = cell_strings(read_mat(root / "refnames_all.mat", ("refnames_all",))["refnames_all"])
    total = sum(n for _, n in LIVE_FOLDERS)
    for what, values in ((source.name, dmos), (source.name + " orgs", orgs), ("refnames_all.mat", refnames)):
        if len(values) != total:
            raise DatasetError(f"{root / what.split()[0]}: {len(values)} entries, LIVE Release 2 has {total}")
    references = files_by_name(root / "refimgs")
    records, problems, i = [], [], 0
    for folder, count in LIVE_FOLDERS:
        files = files_by_name(root / folder)
        for n in range(1, count + 1):
            j, i = i, i + 1
            if orgs[j] == 1:
                continue
            name = f"img{n}.bmp"
            path = files.get(name)
            score = to_float(dmos[j])
            if path is None or score is None:
                problems.append(
                    f"{root / folder / name} (entry {j + 1} of {source.name}): "
                    + ("no such image" if path is None else f"DMOS {dmos[j]!r} is not a number")
                )
                continue
            ref = Path(refnames[j]).stem
            sd = to_float(std[j]) if std is not None else None
            records.append(
                make_record(
                    path,
                    score,
                    scale,
                    ref,
                    kind=folder,
                    sd=sd,
                    name=f"{folder}/{name}",
                    reference=references.get(refnames[j].lower()),
                )
            )
    return Dataset(
        "live", root, finish_records(records, problems, source), scale, authentic=False, type_names=dict(LIVE_TYPES)
    )

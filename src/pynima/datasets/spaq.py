"""SPAQ (Fang et al. 2020): smartphone photos, MOS 0-100; scored with the shorter side resized once to 512 px."""

from __future__ import annotations

import logging
from pathlib import Path

from pynima.datasets._tables import files_by_name, finish_records, make_record, sheet_rows, to_float
from pynima.datasets.record import Dataset, Scale, problems_error
from pynima.datasets.registry import register
from pynima.errors import DatasetError

__all__ = ["SCALE", "SPAQ_CACHE", "SPAQ_LABELS", "SPAQ_SIDE", "read_spaq"]

log = logging.getLogger(__name__)


SPAQ_LABELS = Path("Annotations") / "MOS and Image attribute scores.xlsx"


SPAQ_SIDE = 512  # SPAQ's phone photos (up to 4000x3000) are scored with the shorter side resized to this


SPAQ_CACHE = f"TestImage_{SPAQ_SIDE}"


SCALE = Scale(0.0, 100.0)


@register("spaq", signatures=("Annotations/MOS and Image attribute scores.xlsx",), scale=SCALE)
def read_spaq(root: Path, workers: int = 4) -> Dataset:
    """SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (first sheet: Image name, MOS, then five attribute
    scores; MOS 0-100, higher better; no std) and ``TestImage/`` (11125 JPEGs from 66 phones, up to 4000x3000).

    Resize policy, as the SPAQ authors' code: the shorter side is resized to 512 (Lanczos, aspect kept; EXIF
    orientation applied first, as for every image pynima reads), once, into ``TestImage_512/`` next to
    ``TestImage/`` as PNG (lossless, so the resize adds no compression of its own). Later reads reuse those files;
    an original that changes afterwards is resized again (its cached copy is older).
    """
    scale = SCALE
    label_file = root / SPAQ_LABELS
    rows = sheet_rows(label_file, None, ("image name", "mos"))
    originals = files_by_name(root / "TestImage")
    if not originals:
        raise DatasetError(f"{root / 'TestImage'}: missing or empty")
    listed, problems = [], []
    for number, row in rows:
        name, score = str(row["image name"] or "").strip(), to_float(row["mos"])
        path = originals.get(name.lower())
        if not name or score is None:
            problems.append(
                f"{label_file} row {number}: expected an image name and a MOS, got "
                f"{row['image name']!r}, {row['mos']!r}"
            )
        elif path is None:
            problems.append(f"{root / 'TestImage' / name} ({SPAQ_LABELS.name} row {number}): no such image")
        else:
            listed.append((name, score, path))
    if problems:
        raise problems_error(problems)
    resized = _resize_once([p for _, _, p in listed], root / SPAQ_CACHE, workers)
    records = [
        make_record(small, score, scale, ref=name, name=name)
        for (name, score, _), small in zip(listed, resized, strict=True)
    ]
    return Dataset("spaq", root, finish_records(records, [], label_file), scale, authentic=True)


def _resize_once(paths: list[Path], cache: Path, workers: int) -> list[Path]:
    """Each image with its shorter side resized to SPAQ_SIDE (never enlarged), as a PNG in ``cache``, made only when
    missing or older than the original; written atomically. One DatasetError for every original that cannot be read.
    """
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from pynima.files import atomic_path
    from pynima.images import load_rgb

    cache.mkdir(exist_ok=True)

    def one(path: Path) -> tuple[Path, str | None]:
        out = cache / f"{path.stem}.png"
        if out.is_file() and out.stat().st_mtime >= path.stat().st_mtime:
            return out, None
        try:
            im = Image.fromarray(load_rgb(path))
        except DatasetError as e:
            return out, str(e)
        w, h = im.size
        if min(w, h) > SPAQ_SIDE:
            f = SPAQ_SIDE / min(w, h)
            im = im.resize((max(SPAQ_SIDE, round(w * f)), max(SPAQ_SIDE, round(h * f))), Image.Resampling.LANCZOS)
        with atomic_path(out) as tmp:
            im.save(tmp, format="PNG", compress_level=1)
        return out, None

    todo = sum(1 for p in paths if not (cache / f"{p.stem}.png").is_file())
    if todo:
        log.warning(
            "%s: resizing %d image(s) to a shorter side of %d px, once (later reads reuse them)", cache, todo, SPAQ_SIDE
        )
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one, paths))
    problems = [e for _, e in done if e]
    if problems:
        raise problems_error(problems)
    return [p for p, _ in done]

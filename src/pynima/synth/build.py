"""``pynima synth``: write a complete TID2013-layout dataset from a set of reference photographs.

Each reference is cropped (never squashed) to TID2013's 512x384 and given the 24 TID2013 distortions at 5 levels
(``pynima.synth.distortions``), so R references give R * 120 distorted images, named and laid out exactly as TID2013
(see ``pynima.datasets.tid2013``). Labels come from one of two sources:

* ``mos_table`` / ``std_table`` (TID2013's ``mos_with_names.txt`` / ``mos_std.txt``): each image gets the human MOS
  and std of the same (reference, type, level). With the Kodak images that TID2013's references 01-19 were cropped
  from, this re-synthesizes TID2013 with its human labels.
* otherwise a pseudo-MOS from a full-reference metric, FSIMc (piq) of the image against its reference, mapped to
  TID2013's 0-9 scale by the monotone logistic ``PSEUDO_MOS_LOGISTIC``; the std by ``PSEUDO_STD_LINEAR``. Both were
  fitted by ``bench/synth_fidelity.py --fit`` on the re-synthesized TID2013 (references 01-19, real labels), so the
  pseudo-labels have TID2013's scale and spread.

Without ``refs`` the references are photographs shipped inside installed packages (``EMBEDDED_REFERENCES``), so the
default dataset builds on a fresh offline machine. Outputs are cached: the folder's ``pynima-synth.json`` records a
hash of every input, and a second run with the same inputs returns at once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pynima.datasets.tid2013 import DISTORTED_DIR, MOS_FILE, REFERENCE_DIR, STD_FILE, read_labels
from pynima.errors import DatasetError
from pynima.files import (
    LOCK_FILE,
    folder_lock,
    is_temporary,
    remove_stale_temporaries,
    temporary_sibling,
    write_bytes,
    write_json,
)
from pynima.images import IMAGE_SUFFIXES, image_files, load_rgb
from pynima.synth.distortions import DISTORTIONS, LEVELS, LEVELS_FILE, distort

__all__ = [
    "EMBEDDED_REFERENCES",
    "FORMAT_VERSION",
    "MANIFEST",
    "OUTPUTS",
    "PSEUDO_METRIC",
    "PSEUDO_MOS_LOGISTIC",
    "PSEUDO_STD_LINEAR",
    "SIZE",
    "SynthResult",
    "fit_reference",
    "image_name",
    "label_source",
    "pseudo_mos",
    "reference_files",
    "synthesize",
]

SIZE = (512, 384)  # TID2013's width, height
MANIFEST = "pynima-synth.json"
FORMAT_VERSION = 1  # bump when the written layout or naming changes

# (package, path inside it) of natural colour photographs that ship with our dependencies.
EMBEDDED_REFERENCES: tuple[tuple[str, str], ...] = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/rocket.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
)

PSEUDO_METRIC = "fsimc"
# MOS = lo + (hi - lo) / (1 + exp(-(q - mid) / scale)), q = FSIMc; fitted by bench/synth_fidelity.py --fit
# (least squares, mid bounded to [0, 1]: the data only show the lower half of the curve; fit quality: docs/data.md)
PSEUDO_MOS_LOGISTIC = {"lo": 2.0873, "hi": 8.89015, "mid": 1.0, "scale": 0.08936}
# std = intercept + slope * MOS, clipped to [0.02, 0.35]; fitted likewise
PSEUDO_STD_LINEAR = {"intercept": 0.06729, "slope": 0.0142}


@dataclass(frozen=True)
class SynthResult:
    """What ``synthesize`` made: the folder, the numbers of images and references, the time, and the labels used."""

    out: Path
    n_images: int
    n_refs: int
    seconds: float
    cached: bool
    labels: str


def pseudo_mos(quality: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map FSIMc scores to (MOS, std) on TID2013's 0-9 scale (monotone in the score)."""
    p = PSEUDO_MOS_LOGISTIC
    mos = p["lo"] + (p["hi"] - p["lo"]) / (1 + np.exp(-(np.asarray(quality, float) - p["mid"]) / p["scale"]))
    std = np.clip(PSEUDO_STD_LINEAR["intercept"] + PSEUDO_STD_LINEAR["slope"] * mos, 0.02, 0.35)
    return mos, std


def fit_reference(image: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Centre-crop to ``size`` (w, h); an image smaller than that is first scaled up, keeping its aspect ratio."""
    from PIL import Image

    w, h = size
    ih, iw = image.shape[:2]
    if iw < w or ih < h:
        s = max(w / iw, h / ih)
        iw, ih = max(w, math.ceil(iw * s)), max(h, math.ceil(ih * s))
        image = np.asarray(Image.fromarray(image).resize((iw, ih), Image.Resampling.LANCZOS))
    y, x = (ih - h) // 2, (iw - w) // 2
    return np.ascontiguousarray(image[y : y + h, x : x + w])


def _package_file(package: str, rel: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"embedded reference {package}/{rel}: package {package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / rel


def reference_files(refs: str | Path | None) -> list[Path]:
    """The reference image files: those in ``refs`` (sorted by file name), or the embedded default set."""
    if refs is None:
        return [_package_file(pkg, rel) for pkg, rel in EMBEDDED_REFERENCES]
    folder = Path(refs)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: reference folder not found")
    files = image_files(folder)
    if not files:
        raise DatasetError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(files) > 99:
        raise DatasetError(f"{folder}: {len(files)} images, but TID2013 names allow at most 99 references")
    return files


def _sha(paths: Iterable[Path], *extra: str) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()


def image_name(ref: int, kind: int, level: int) -> str:
    """TID2013's file name for a reference, distortion type and level (``i01_02_3.bmp``)."""
    return f"i{ref:02d}_{kind:02d}_{level}.bmp"


# ---------------------------------------------------------------------------------------------- worker side

_W: dict = {}


def _init_worker(refs: list[np.ndarray], out: str, seed: int, score: bool) -> None:
    # Ctrl-C and SIGTERM are the parent's to handle: it terminates the pool (Pool.__exit__), workers die at once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _W.update(refs=refs, out=Path(out), seed=seed, score=score)
    if score:
        import torch

        torch.set_num_threads(1)  # one process per core already


def _make(job: tuple[int, int]) -> tuple[int, int, list[float] | None]:
    """Write the 5 levels of one (reference index, type); return their FR scores if pseudo-labelling."""
    from PIL import Image

    ref_index, kind = job
    ref = _W["refs"][ref_index]
    images = [distort(ref, kind, level, seed=_W["seed"] * 100 + ref_index + 1) for level in LEVELS]
    for level, img in zip(LEVELS, images, strict=True):
        Image.fromarray(img).save(_W["out"] / DISTORTED_DIR / image_name(ref_index + 1, kind, level))
    scores = None
    if _W["score"]:
        from pynima.synth.fullref import fr_scores

        scores = fr_scores(ref, images, [PSEUDO_METRIC])[PSEUDO_METRIC].tolist()
    return ref_index, kind, scores


# ---------------------------------------------------------------------------------------------- main side


def _write_labels(out: Path, names: list[str], mos: Iterable[float], std: Iterable[float]) -> None:
    mos, std = list(mos), list(std)
    # TID2013's own format: CRLF line ends, 5 decimals
    write_bytes(out / MOS_FILE, "".join(f"{m:.5f} {n}\r\n" for m, n in zip(mos, names, strict=True)).encode())
    write_bytes(out / STD_FILE, "".join(f"{s:.5f}\r\n" for s in std).encode())
    write_bytes(out / "mos.txt", "".join(f"{m:.5f}\r\n" for m in mos).encode())


OUTPUTS = (DISTORTED_DIR, REFERENCE_DIR, MOS_FILE, STD_FILE, "mos.txt")  # what synth writes, besides MANIFEST


def _read_manifest(out: Path) -> dict | None:
    """The manifest of a synth dataset in ``out``: None if there is none, {} if it is unreadable."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _on_disk(out: Path, manifest: dict) -> bool:
    """Whether ``out`` holds what its manifest describes (the label files and every distorted image)."""
    folder = out / DISTORTED_DIR
    return (
        all((out / f).is_file() for f in (MOS_FILE, STD_FILE))
        and folder.is_dir()
        and sum(1 for _ in folder.iterdir()) == manifest.get("images")
    )


def _swap_in(new: Path, out: Path, manifest: dict) -> None:
    """Move the complete dataset in ``new`` (a folder inside ``out``, so every rename stays on one filesystem) into
    ``out``: the old manifest is marked incomplete first and the new one written last, so an interruption at any
    point leaves a folder that is never reported as up to date; a failed rename puts the old files back. Files in
    ``out`` that synth did not write are left alone.
    """
    before = _read_manifest(out)
    write_json(out / MANIFEST, (before or {"format": "pynima-synth"}) | {"complete": False})
    trash = temporary_sibling(out / "replaced")
    trash.mkdir()
    moved: list[str] = []
    try:
        for name in OUTPUTS:
            if (out / name).exists():
                os.replace(out / name, trash / name)
            moved.append(name)
            os.replace(new / name, out / name)
    except OSError as e:
        for name in moved:  # undo: the old dataset back in place
            if (trash / name).exists():
                target = out / name
                shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
                os.replace(trash / name, target)
        if before is None:
            (out / MANIFEST).unlink()
        else:
            write_json(out / MANIFEST, before)
        shutil.rmtree(trash, ignore_errors=True)
        raise DatasetError(
            f"{out}: cannot move the new dataset into place ({e.strerror}); the old one is kept"
        ) from None
    write_json(out / MANIFEST, manifest)
    shutil.rmtree(trash, ignore_errors=True)


def synthesize(
    out: str | Path,
    refs: str | Path | None = None,
    mos_table: str | Path | None = None,
    std_table: str | Path | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    force: bool = False,
) -> SynthResult:
    """Write (or reuse, when cached) a TID2013-layout dataset in ``out``. See the module docstring.

    Every input is read and checked before ``out`` is touched; the dataset is built in a temporary sibling folder
    and moved in when complete, so a failure or an interruption leaves the previous dataset as it was.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if (mos_table is None) != (std_table is None):
        raise DatasetError("give both --mos-table and --std-table, or neither")
    files = reference_files(refs)
    tables = [Path(mos_table), Path(std_table)] if mos_table else []
    # what the output depends on: inputs, the distortion code and level table, the layout version, the label mapping
    code = [Path(__file__).with_name("distortions.py"), LEVELS_FILE]
    labels_kind = "tables" if tables else f"pseudo-mos:{PSEUDO_METRIC}"
    mapping = "" if tables else json.dumps([PSEUDO_MOS_LOGISTIC, PSEUDO_STD_LINEAR])
    key = _sha(files + tables + code, str(seed), labels_kind, mapping, str(FORMAT_VERSION))
    n_images = len(files) * len(DISTORTIONS) * len(LEVELS)

    old = _read_manifest(out) if out.is_dir() else None
    if old and old.get("key") == key and old.get("complete") and not force and _on_disk(out, old):
        return SynthResult(out, n_images, len(files), time.perf_counter() - t0, True, labels_kind)
    # the lock and the temporaries of a killed build (removed below, under the lock) do not make a folder a dataset
    foreign = out.is_dir() and any(p.name != LOCK_FILE and not is_temporary(p) for p in out.iterdir())
    if out.exists() and (not out.is_dir() or foreign) and old is None:
        raise DatasetError(f"{out}: exists, is not empty and is not a pynima synth dataset; choose another folder")

    table = {}
    if tables:
        table = {(lab.ref, lab.kind, lab.level): lab for lab in read_labels(*tables)}
        missing = [image_name(r, k, lv) for r, k, lv in _keys(len(files)) if (r, k, lv) not in table]
        if missing:
            raise DatasetError(
                f"{tables[0]}: no row for {missing[0]} ({len(missing)} images of the {len(files)} "
                f"references have no label)"
            )
    references = []
    for f in files:  # into memory before anything is written: the references may live inside ``out``
        try:
            references.append(fit_reference(load_rgb(f)))
        except ValueError as e:
            raise DatasetError(f"{f}: {e}") from None

    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):  # one synth at a time into one folder
        remove_stale_temporaries(out)  # what killed runs left: half-built datasets, replaced ones
        new = temporary_sibling(out / "build")
        try:
            (new / DISTORTED_DIR).mkdir(parents=True)
            (new / REFERENCE_DIR).mkdir()
            _build(new, references, seed, workers, progress, table)
            seconds = time.perf_counter() - t0
            manifest = {
                "format": "pynima-synth",
                "key": key,
                "complete": True,
                "seed": seed,
                "labels": labels_kind,
                "references": [str(f) for f in files],
                "images": n_images,
                "seconds": round(seconds, 1),
            }
            _swap_in(new, out, manifest)
        finally:
            shutil.rmtree(new, ignore_errors=True)
    return SynthResult(out, n_images, len(files), seconds, False, labels_kind)


def label_source(root: str | Path) -> str | None:
    """What the labels of a ``pynima synth`` dataset are (reports must not call pseudo-labels human opinion), or None
    for a folder that synth did not write.
    """
    try:
        labels = json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8")).get("labels")
    except (OSError, ValueError, AttributeError):
        return None
    if labels == "tables":
        return "human opinion scores (the label tables given to pynima synth)"
    if isinstance(labels, str) and labels.startswith("pseudo-mos:"):
        metric = labels.partition(":")[2].upper().replace("FSIMC", "FSIMc")
        return f"pseudo-labels: {metric}, a full-reference metric, mapped to TID2013's scale (not human opinion)"
    return None


def _keys(n_refs: int) -> list[tuple[int, int, int]]:
    """(reference, type, level) of every image, in TID2013's order."""
    return [(r, k, lv) for r in range(1, n_refs + 1) for k in DISTORTIONS for lv in LEVELS]


def _build(
    new: Path, references: list[np.ndarray], seed: int, workers: int | None, progress: bool, table: dict
) -> None:
    """Write the references, the distorted images and the label files into ``new``."""
    from PIL import Image
    from tqdm import tqdm

    for i, ref in enumerate(references, start=1):
        Image.fromarray(ref).save(new / REFERENCE_DIR / f"I{i:02d}.bmp")
    # the JPEG2000-based types are the slowest: start them first so the pool ends evenly
    slow = {11: 0, 13: 0, 20: 1, 22: 1, 24: 1}
    jobs = sorted(((r, k) for r in range(len(references)) for k in DISTORTIONS), key=lambda j: (slow.get(j[1], 2), j))
    scores: dict[tuple[int, int], list[float]] = {}
    # multiprocessing.Pool rather than ProcessPoolExecutor: leaving its block terminates the workers, so Ctrl-C or
    # SIGTERM stops synth at once; the executor waited for every queued job and left workers behind on SIGTERM
    with multiprocessing.Pool(
        workers or os.cpu_count() or 1, initializer=_init_worker, initargs=(references, str(new), seed, not table)
    ) as pool:
        for r, k, s in tqdm(
            pool.imap_unordered(_make, jobs), total=len(jobs), desc="synth", unit="ref x type", disable=not progress
        ):
            if s is not None:
                scores[r, k] = s
    keys = _keys(len(references))
    if table:
        mos, std = [table[k].mos for k in keys], [table[k].mos_std for k in keys]
    else:
        mos, std = pseudo_mos(np.array([scores[r - 1, k][lv - 1] for r, k, lv in keys]))
    _write_labels(new, [image_name(*k) for k in keys], mos, std)

"""Evaluating a checkpoint on a dataset: metrics with 95% intervals, SRCC per distortion type, a scatter plot, and the
ranking within one reference (each reference's clean image scored).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from pynima.config import DEFAULT_CROPS
from pynima.datasets.record import MODEL_SCALE, Record, Scale
from pynima.datasets.registry import read_dataset
from pynima.datasets.splits import apply_split
from pynima.errors import DatasetError, PynimaError
from pynima.evaluation.metrics import METRIC_ORDER, RANKING_ORDER, evaluate_scores, spearman_interval
from pynima.evaluation.plots import scatter
from pynima.files import RUN_MARKER, atomic_path, write_json

__all__ = [
    "CROP_DESCRIPTION",
    "EVALUATION_FILES",
    "PER_TYPE_MIN",
    "evaluate_checkpoint",
    "format_table",
    "predict_distributions",
    "per_type_srcc",
    "ranking_measures",
    "read_predictions",
    "write_predictions",
]

log = logging.getLogger(__name__)


CROP_DESCRIPTION = {
    "centre": "single centre 224x224 crop at native resolution",
    "grid": "224x224 crops covering the image at native resolution, distributions averaged",
    "full": "the whole image at native resolution, one pass",
}


def predict_distributions(scorer, records: list[Record] | list[Path], batch_size: int = 32) -> np.ndarray:
    """(N, 10) predicted distributions of ``records`` (or image paths) by a ``pynima.scoring.scorer.Scorer``: the same
    preprocessing as ``pynima predict``.
    """
    out = []
    paths = [r if isinstance(r, Path) else r.path for r in records]
    for _, score, error in scorer.score_paths(paths, batch_size=batch_size):
        if error:
            raise DatasetError(error)
        out.append(score.distribution)
    return np.array(out)


PER_TYPE_MIN = 10  # types with fewer test images get no per-type SRCC: too wide an interval to read anything in


def write_predictions(
    path: Path, records: list[Record], dists: np.ndarray, per_image_emd: np.ndarray, scale: Scale = MODEL_SCALE
) -> None:
    """One row per image: name, reference, type, level, human MOS and predicted mean and std on the model's 0-9
    scale, EMD, then the human score and the predicted mean on the dataset's own ``scale`` (for re-analysis, e.g.
    the split-and-image bootstrap of ``pynima benchmark``).
    """
    import csv

    from pynima.model.labels import moments

    mean, std = moments(dists)
    native = scale.from_model(mean)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "ref", "kind", "level", "mos", "pred_mean", "pred_std", "emd", "score", "pred_score"])
        for r, m, s, e, n in zip(records, mean, std, per_image_emd, native, strict=True):
            w.writerow(
                [
                    r.key,
                    r.ref,
                    r.kind,
                    r.level,
                    f"{r.mos:.5f}",
                    f"{m:.6f}",
                    f"{s:.6f}",
                    f"{e:.6f}",
                    f"{r.dataset_score:.6g}",
                    f"{n:.6g}",
                ]
            )


def read_predictions(path: Path) -> dict[str, np.ndarray]:
    """Columns of a predictions.csv as arrays."""
    import csv

    with open(path) as f:
        rows = list(csv.DictReader(f))
    text = ("name", "ref", "kind")  # names, and references and types that may be words (LIVE's "jpeg")
    return {k: np.array([r[k] for r in rows], dtype=object if k in text else float) for k in rows[0]} if rows else {}


def ranking_measures(scorer, records: list[Record], pred: np.ndarray) -> dict:
    """``pynima.evaluation.metrics.within_reference`` of ``records`` scored as ``pred``, with each reference's clean
    image (the dataset's reference file) scored by ``scorer``; a note instead when the dataset has no levels.
    """
    from pynima.evaluation.metrics import within_reference
    from pynima.model.labels import moments

    if not any(r.level > 0 for r in records):
        return {"note": "no distortion levels in this dataset: within-reference ranking not measured"}
    references = {r.ref: r.reference for r in records if r.level > 0 and r.reference is not None}
    refs = sorted(references, key=str)
    clean = {}
    if refs:
        clean_pred = moments(predict_distributions(scorer, [references[r] for r in refs]))[0]
        clean = dict(zip(refs, clean_pred.tolist(), strict=True))
    result = within_reference(
        pred,
        np.array([r.mos for r in records]),
        np.array([r.ref for r in records], object),
        np.array([r.kind for r in records], object),
        np.array([r.level for r in records]),
        clean,
    )
    result = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()}  # JSON
    result["clean_scores"] = {str(r): v for r, v in clean.items()}
    if not clean:
        result["note"] = "no reference images in this dataset: the clean image's rank not measured"
    return result


def format_table(metrics: dict) -> str:
    """The metrics of ``evaluate`` as a text table, 95% intervals and the ranking measures included."""
    lines = [f"{'metric':14s} {'value':>8s}   95% interval"]
    for k in METRIC_ORDER:
        if k in metrics:
            m = metrics[k]
            lines.append(f"{k:14s} {m['value']:8.4f}   [{m['ci_low']:.4f}, {m['ci_high']:.4f}]")
    ranking = metrics.get("ranking") or {}
    shown = [(k, ranking[k]) for k in RANKING_ORDER if isinstance(ranking.get(k), float) and math.isfinite(ranking[k])]
    if shown:
        lines.append(
            f"within one reference ({ranking['groups']} reference x type groups, {ranking['references']} references):"
        )
        lines += [f"  {k:20s} {v:8.4f}" for k, v in shown]
    if ranking.get("note"):
        lines.append(f"note: {ranking['note']}")
    return "\n".join(lines)


EVALUATION_FILES = ("metrics.json", "predictions.csv", "scatter.png")


def _check_output_folder(out: Path, replace: bool) -> None:
    """Refuse to write over an earlier evaluation without ``replace``, and over a training run's test results (its
    folder carries RUN_MARKER): ``pynima evaluate --out RUN`` must not silently replace what ``pynima train``
    measured.
    """
    old = [name for name in EVALUATION_FILES if (out / name).exists()]
    if not old or replace:
        return
    if (out / RUN_MARKER).is_file():
        raise PynimaError(
            f"{out}: a training run's folder; evaluating into it would replace its test results "
            f"({', '.join(old)}): choose another --out (or --overwrite to replace them)"
        )
    raise PynimaError(
        f"{out}: holds an evaluation already ({', '.join(old)}); replace it with --overwrite, or choose another --out"
    )


def _undefined(records: list[Record]) -> str | None:
    """Why the correlations of ``records`` are undefined (under 3 images, or one label for all); None if defined."""
    if len(records) < 3:
        return f"{len(records)} image(s); correlations need at least 3"
    if len({r.mos for r in records}) == 1:
        return f"every label is {records[0].dataset_score:g}; correlations with a constant are undefined"
    return None


def per_type_srcc(pred: np.ndarray, true: np.ndarray, kinds: np.ndarray, names: dict) -> dict[str, dict]:
    """SRCC per distortion type with its 95% Fisher-z interval, for the types of at least PER_TYPE_MIN images whose
    predictions and labels both vary.

    Args:
        pred: predicted scores.
        true: human scores.
        kinds: each image's distortion type.
        names: type names by type, where the dataset has them.

    Returns:
        By type (as text): its name, ``srcc``, ``n`` and the interval's ``ci_low`` and ``ci_high``.
    """
    from scipy import stats

    per_type = {}
    for k in sorted(set(kinds.tolist())):
        sel = kinds == k
        n = int(sel.sum())
        if n >= PER_TYPE_MIN and np.ptp(pred[sel]) > 0 and np.ptp(true[sel]) > 0:
            srcc = float(stats.spearmanr(pred[sel], true[sel]).statistic)
            per_type[str(k)] = {
                "name": names.get(k, str(k)),
                "srcc": srcc,
                "n": n,
                **dict(zip(("ci_low", "ci_high"), spearman_interval(srcc, n), strict=True)),
            }
    return per_type


def evaluate_checkpoint(
    ckpt: str | Path,
    data: str | Path,
    out: str | Path,
    split: dict | None = None,
    part: str = "test",
    crops: str = DEFAULT_CROPS,
    n_boot: int = 1000,
    allow_out_of_range: bool = False,
    engine: str | None = None,
    format: str | None = None,
    scale: tuple[float, float] | None = None,
    replace: bool = False,
    undefined_ok: bool = False,
) -> dict:
    """Score ``part`` of ``split`` (or the whole dataset when ``split`` is None) and write metrics.json,
    predictions.csv and scatter.png to ``out``. Returns the metrics dict (``format_table`` prints it).

    ``ckpt``: a checkpoint, or an exported ``.onnx`` (its targets for the EMD are then built with the default label
    options). ``data``, ``format``, ``scale``: any dataset ``pynima.datasets.registry.read_dataset`` reads: metrics are
    on the model's 0-9 scale (SRCC, PLCC and KRCC are the same on the dataset's own; RMSE is also given on it).

    ``crops``: "centre" (one 224 crop), "grid" (crops covering the image, averaged) or "full" (the whole image).
    ``engine``: as ``pynima.scoring.models.load``; by default the up-to-date ``best.onnx`` next to the checkpoint runs
    on ONNX Runtime (several times faster than eager PyTorch on CPU, docs/performance.md), else the checkpoint on
    PyTorch.
    ``replace``: write over an earlier evaluation in ``out`` (refused otherwise, as is a training run's folder).
    A dataset of fewer than 3 images, or whose labels are all equal, is refused (its correlations are undefined), unless
    ``undefined_ok``: then they are null in metrics.json, with a warning (a training run's small test part).
    """
    import torch

    from pynima.model.labels import label_distributions, moments
    from pynima.model.losses import emd
    from pynima.model.network import read_checkpoint
    from pynima.scoring.models import load
    from pynima.synth.build import label_source

    out = Path(out)
    _check_output_folder(out, replace)
    scorer = load(ckpt, engine=engine, crops=crops)
    hp = {} if Path(ckpt).suffix.lower() == ".onnx" else read_checkpoint(ckpt).get("hyper_parameters") or {}
    dataset = read_dataset(data, format, scale, allow_out_of_range)
    records = dataset.records
    if split is not None:
        records = apply_split(records, split, part)
    where = f"{data}" + (f" ({part} part)" if split is not None else "")
    undefined = _undefined(records)
    if undefined and not undefined_ok:
        raise PynimaError(f"{where}: {undefined}")
    if undefined:
        log.warning("%s: %s (null in metrics.json)", where, undefined)
    out.mkdir(parents=True, exist_ok=True)
    dists = predict_distributions(scorer, records)
    pred = moments(dists)[0]
    true = np.array([r.mos for r in records])
    targets = label_distributions(records, hp.get("labels", "auto"), hp.get("vote_std", "sem"))
    per_image_emd = emd(torch.from_numpy(dists), torch.from_numpy(targets), reduction="none").numpy()
    metrics = evaluate_scores(pred, true, per_image_emd, n_boot=n_boot)
    kinds = np.array([r.kind for r in records])
    per_type = per_type_srcc(pred, true, kinds, dataset.type_names)
    ranking = ranking_measures(scorer, records, pred)
    native_true = np.array([r.dataset_score for r in records])
    native_rmse = float(np.sqrt(np.mean((dataset.scale.from_model(pred) - native_true) ** 2)))
    labels = label_source(dataset.root) or dataset.labels
    result = metrics | {
        "per_type_srcc": per_type,
        "ranking": ranking,
        "n_images": len(records),
        "n_references": len({r.ref for r in records}),
        "labels": labels,
        "per_type_interval": f"95% Fisher-z interval of Spearman's rho (variance 1.06 / (n - 3)); "
        f"types with fewer than {PER_TYPE_MIN} images left out",
        "checkpoint": str(ckpt),
        "data": str(data),
        "format": dataset.format,
        "scale": dataset.scale.describe(),
        "rmse_dataset_scale": native_rmse,
        "part": part if split is not None else "all",
        "crops": CROP_DESCRIPTION[crops],
        "engine": scorer.engine.name,
        "interval": f"95% percentile bootstrap over images ({n_boot} resamples; plcc_logistic with the logistic "
        "fitted on all images); excludes split variance",
    }
    write_predictions(out / "predictions.csv", records, dists, per_image_emd, dataset.scale)
    scatter(
        pred,
        true,
        kinds.tolist(),
        dataset.type_names,
        out / "scatter.png",
        f"{result['part']} ({len(records)} images of {result['n_references']} references)",
        "pseudo-label (not human)" if labels.startswith("pseudo") else "human MOS",
    )
    write_json(out / "metrics.json", result)  # last: a folder with metrics.json holds a finished evaluation
    log.debug("%s set: %d images (%s)", result["part"], len(records), out / "metrics.json")
    return result

"""How faithful is the re-synthesized TID2013? SRCC of FR metrics against the human MOS, beside the literature.

Builds (or reuses) ``pynima synth`` on the Kodak images that TID2013's references 01-19 were cropped from, labelled
with TID2013's real MOS, then correlates PSNR, SSIM, MS-SSIM, FSIM and FSIMc (piq) with those MOS, overall and per
distortion type. On the real TID2013 the same metrics reach the SRCC in LITERATURE; a faithful re-synthesis should
land near them (target: overall within 0.05, and FSIMc >= 0.3 on every type).

    python bench/synth_fidelity.py [--kodak DIR] [--labels DIR] [--out DIR] [--fit] [--markdown]

``--fit`` also fits the pseudo-MOS mapping (FSIMc -> MOS logistic, MOS -> std line) used by ``pynima synth`` without
label tables, and prints the constants to paste into ``pynima/synth/build.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

from pynima.datasets.tid2013 import read_tid2013
from pynima.synth.build import MANIFEST, synthesize
from pynima.synth.distortions import DISTORTIONS
from pynima.synth.fullref import FR_METRICS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# SRCC on the full real TID2013 (3000 images), as tabulated in L. Zhang, Y. Shen, H. Li, "VSI: a visual
# saliency-induced index for perceptual image quality assessment", IEEE TIP 23(10), 2014, Table IV; the same values
# recur in later FR-IQA comparisons (GMSD, MDSI).
LITERATURE = {"psnr": 0.6396, "ssim": 0.7417, "ms_ssim": 0.7859, "fsim": 0.8015, "fsimc": 0.8510}


def _score_ref(args: tuple[str, list[str]]) -> dict[str, list[float]]:
    import torch

    from pynima.images import load_rgb
    from pynima.synth.fullref import fr_scores

    torch.set_num_threads(1)
    ref, paths = args
    return {k: v.tolist() for k, v in fr_scores(load_rgb(ref), [load_rgb(p) for p in paths]).items()}


def scores_for(out: Path, records) -> dict[str, np.ndarray]:
    """FR scores of every record, cached next to the dataset (keyed by the synth manifest)."""
    key = json.loads((out / MANIFEST).read_text())["key"]
    cache = out / "fr_scores.json"
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return {k: np.array(v) for k, v in saved["scores"].items()}
    by_ref: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_ref.setdefault(str(r.reference), []).append(i)
    jobs = [(ref, [str(records[i].path) for i in idx]) for ref, idx in by_ref.items()]
    scores = {m: np.zeros(len(records)) for m in FR_METRICS}
    with ProcessPoolExecutor() as pool:
        for idx, res in zip(by_ref.values(), pool.map(_score_ref, jobs), strict=True):
            for m in FR_METRICS:
                scores[m][idx] = res[m]
    cache.write_text(json.dumps({"key": key, "scores": {k: v.tolist() for k, v in scores.items()}}))
    return scores


def srcc(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def logistic(x: np.ndarray, lo: float, hi: float, mid: float, scale: float) -> np.ndarray:
    """The form of pynima.synth.build.PSEUDO_MOS_LOGISTIC."""
    return lo + (hi - lo) / (1 + np.exp(-(x - mid) / scale))


def fit_logistic(q: np.ndarray, mos: np.ndarray) -> dict[str, float]:
    """Least-squares FSIMc -> MOS logistic (mid bounded to [0, 1]), as the keys of PSEUDO_MOS_LOGISTIC."""
    from scipy.optimize import curve_fit

    p, _ = curve_fit(
        logistic,
        q,
        mos,
        p0=[mos.min(), mos.max(), float(np.median(q)), 0.02],
        bounds=([0, 0, 0, 1e-4], [9, 9, 1, 1]),
        maxfev=20000,
    )
    return {k: round(float(v), 5) for k, v in zip(["lo", "hi", "mid", "scale"], p, strict=True)}


def fit_pseudo_mos(q: np.ndarray, mos: np.ndarray, std: np.ndarray) -> None:
    logistic_params = fit_logistic(q, mos)
    lin = stats.linregress(mos, std)
    pred = logistic(q, **logistic_params)
    print("\npseudo-MOS fit (FSIMc -> MOS):")
    print("PSEUDO_MOS_LOGISTIC = " + json.dumps(logistic_params))
    std_line = {"intercept": round(float(lin.intercept), 5), "slope": round(float(lin.slope), 5)}
    print("PSEUDO_STD_LINEAR = " + json.dumps(std_line))
    print(
        f"fit: PLCC {stats.pearsonr(pred, mos).statistic:.4f}, RMSE {np.sqrt(np.mean((pred - mos) ** 2)):.3f}; "
        f"std~MOS r={lin.rvalue:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kodak", type=Path, default=SHARED / "kodak")
    ap.add_argument("--labels", type=Path, default=SHARED / "tid2013-labels")
    ap.add_argument("--out", type=Path, default=Path("data/tid2013-resynth"))
    ap.add_argument("--fit", action="store_true", help="fit and print the pseudo-MOS mapping constants")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = ap.parse_args()

    t0 = time.perf_counter()
    res = synthesize(
        args.out, refs=args.kodak, mos_table=args.labels / "mos_with_names.txt", std_table=args.labels / "mos_std.txt"
    )
    gen = json.loads((args.out / MANIFEST).read_text())["seconds"]
    print(
        f"dataset: {res.out} ({res.n_images} images, {res.n_refs} references); generation time {gen:.1f} s"
        + (" (cached from an earlier run)" if res.cached else "")
    )
    records = read_tid2013(args.out)
    t1 = time.perf_counter()
    scores = scores_for(args.out, records)
    print(f"FR scores: {time.perf_counter() - t1:.1f} s")
    mos = np.array([r.mos for r in records])
    kinds = np.array([r.kind for r in records])

    sep = " | " if args.markdown else "  "
    head = ["metric", "SRCC here", "SRCC real TID2013", "difference"]
    print()
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    else:
        print(f"{head[0]:8s}  {head[1]:>9s}  {head[2]:>17s}  {head[3]:>10s}")
    for m in FR_METRICS:
        s = srcc(scores[m], mos)
        row = [m, f"{s:.4f}", f"{LITERATURE[m]:.4f}", f"{s - LITERATURE[m]:+.4f}"]
        print(
            ("| " + sep.join(row) + " |")
            if args.markdown
            else f"{row[0]:8s}  {row[1]:>9s}  {row[2]:>17s}  {row[3]:>10s}"
        )

    print("\nper distortion type (SRCC with MOS, 95 images each):")
    head = ["type", "name"] + list(FR_METRICS)
    if args.markdown:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for k, d in DISTORTIONS.items():
        sel = kinds == k
        vals = [f"{srcc(scores[m][sel], mos[sel]):.3f}" for m in FR_METRICS]
        print(
            ("| " + " | ".join([str(k), d.name] + vals) + " |")
            if args.markdown
            else f"{k:2d} {d.name[:40]:40s} " + " ".join(f"{v:>7s}" for v in vals)
        )
    worst = min(srcc(scores["fsimc"][kinds == k], mos[kinds == k]) for k in DISTORTIONS)
    print(f"\nlowest per-type FSIMc SRCC: {worst:.3f}; total bench time {time.perf_counter() - t0:.1f} s")
    if args.fit:
        fit_pseudo_mos(scores["fsimc"], mos, np.array([r.mos_std for r in records]))


if __name__ == "__main__":
    main()

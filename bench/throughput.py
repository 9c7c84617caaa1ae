"""Batch scoring speed: pynima's engines against a baseline written the way the reference implementation works.

    python bench/throughput.py [--images 256] [--repeats 3] [--backbone mobilenet_v2] [--ckpt CKPT]
                               [--data DIR --split-file SPLIT]

Everything is measured in this one run, on the same JPEG folder (512x384, TID2013's size, made from the photos
bundled with scikit-image and matplotlib that pynima synth uses, quality 90):

* baseline: torchvision ``mobilenet_v2`` with NIMA's head, each image decoded by PIL and resized to 224x224,
  eager PyTorch, fp32, NCHW, one image decoded after another;
* pynima engines (pynima.scoring.scorer.Scorer: centre 224 crop at native resolution, decoding in a thread pool):
  ``torch`` (eager, channels_last), ``torch-bf16`` (the same under bfloat16 autocast), ``onnx`` (ONNX Runtime
  fp32), ``openvino`` (OpenVINO, fp32 forced), ``openvino-bf16`` and ``onnx-int8`` (static int8);
* the model's FLOPs per image (torch.utils.flop_counter) and this machine's fp32 GEMM rate (torch.mm, 4096^2), so
  each engine's rate is also given as a fraction of the fp32 roof;
* cold start: wall time of ``pynima predict MODEL one.jpg`` in a fresh process: for the checkpoint (the default
  engine picks up an export next to it, as ``pynima train`` leaves one), the checkpoint forced onto PyTorch, and the
  ONNX file.

Weights do not change speed, so the models here are randomly initialised unless --ckpt gives a trained checkpoint
(needed for the accuracy check: with --data and --split-file, the SRCC of every engine on that test set).
Each rate is the median over --repeats passes through the whole folder, after one warm-up batch. "Network alone"
is the engine on a batch that is already decoded and normalized: the ceiling for that engine on this machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pynima.scoring.engines import TorchEngine
from pynima.scoring.models import exported_sidecar, load
from pynima.scoring.scorer import Scorer

SIZE = (512, 384)


def make_jpegs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` JPEGs of 512x384: random windows (and flips) of the photos ``pynima synth`` embeds."""
    from PIL import Image

    from pynima.images import load_rgb
    from pynima.synth.build import fit_reference, reference_files

    photos = [load_rgb(f) for f in reference_files(None)]
    photos = [p if p.shape[0] >= 450 and p.shape[1] >= 600 else fit_reference(p, (600, 450)) for p in photos]
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = photos[i % len(photos)]
        y, x = rng.integers(0, p.shape[0] - SIZE[1] + 1), rng.integers(0, p.shape[1] - SIZE[0] + 1)
        crop = p[y : y + SIZE[1], x : x + SIZE[0]]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        path = folder / f"img{i:04d}.jpg"
        Image.fromarray(np.ascontiguousarray(crop)).save(path, quality=90)
        paths.append(path)
    return paths


def baseline_model() -> torch.nn.Module:
    """The reference implementation's network: torchvision mobilenet_v2, classifier -> Dropout, Linear(1280, 10),
    softmax.
    """
    import torchvision

    net = torchvision.models.mobilenet_v2(weights=None)
    net.classifier = torch.nn.Sequential(torch.nn.Dropout(0.75), torch.nn.Linear(1280, 10), torch.nn.Softmax(dim=1))
    return net.eval()


def baseline_rate(paths: list[Path], batch: int) -> float:
    from PIL import Image
    from torchvision import transforms

    model = baseline_model()
    tf = transforms.Compose(
        [
            transforms.Resize((224, 224)),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )

    def run(ps):
        with torch.no_grad():
            for i in range(0, len(ps), batch):
                model(torch.stack([tf(Image.open(p).convert("RGB")) for p in ps[i : i + batch]]))

    run(paths[:batch])
    t0 = time.perf_counter()
    run(paths)
    return len(paths) / (time.perf_counter() - t0)


def scorer_rate(scorer: Scorer, paths: list[Path], batch: int) -> float:
    list(scorer.score_paths(paths[:batch], batch_size=batch))
    t0 = time.perf_counter()
    for _, _, err in scorer.score_paths(paths, batch_size=batch):
        assert err is None, err
    return len(paths) / (time.perf_counter() - t0)


def network_rate(scorer: Scorer, batch: int, reps: int = 8) -> float:
    """Images per second of the network alone, on a batch already decoded and normalized."""
    x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    scorer.engine(x)
    t0 = time.perf_counter()
    for _ in range(reps):
        scorer.engine(x)
    return reps * batch / (time.perf_counter() - t0)


def preprocessing_ms(scorer: Scorer, paths: list[Path]) -> tuple[float, float]:
    """Milliseconds per image, one thread: decoding (pynima.images.load_rgb), then crop and normalize."""
    from pynima.images import load_rgb
    from pynima.scoring.preprocess import crops, normalize

    t0 = time.perf_counter()
    images = [load_rgb(p) for p in paths]
    t1 = time.perf_counter()
    for im in images:
        normalize(crops(im, scorer.crops), scorer.engine.mean, scorer.engine.std)
    t2 = time.perf_counter()
    return 1e3 * (t1 - t0) / len(paths), 1e3 * (t2 - t1) / len(paths)


def flops_per_image(model: torch.nn.Module) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    return float(counter.get_total_flops())


def gemm_rate(n: int = 4096, reps: int = 5) -> float:
    """Measured fp32 matrix-multiply rate of this machine (FLOP/s), best of ``reps``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def cold_start(model: Path, image: Path, *extra: str, reps: int = 3) -> float:
    exe = Path(sys.executable).with_name("pynima")
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        subprocess.run([str(exe), "predict", str(model), str(image), *extra], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def save_untrained_checkpoint(backbone: str, path: Path) -> Path:
    """A checkpoint in pynima's layout (hyper_parameters + state_dict) for a randomly initialised model."""
    from pynima.model.network import create_model

    model = create_model(backbone, pretrained=False)
    torch.save(
        {
            "hyper_parameters": {"backbone": backbone, "labels": "maxent", "vote_std": "sem"},
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
        },
        path,
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--backbone", default="mobilenet_v2", help="pynima backbone for the engines (default mobilenet_v2)")
    ap.add_argument("--cold-runs", type=int, default=3, help="fresh processes per cold-start time (default 3)")
    ap.add_argument("--ckpt", type=Path, help="a trained checkpoint (default: a randomly initialised one)")
    ap.add_argument("--data", help="with --split-file: also the SRCC of each engine on that test set")
    ap.add_argument("--split-file")
    args = ap.parse_args()

    from pynima.scoring.export import export_onnx, quantize_int8

    tmp = Path(tempfile.mkdtemp(prefix="pynima-throughput-"))
    paths = make_jpegs(tmp, args.images)
    ckpt = args.ckpt or save_untrained_checkpoint(args.backbone, tmp / "model.ckpt")
    engine = TorchEngine.from_checkpoint(ckpt)
    print(
        f"{len(paths)} JPEGs 512x384 in {tmp}; backbone {engine.backbone}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    onnx_fp32 = export_onnx(ckpt, tmp / "model.onnx")
    onnx_int8 = quantize_int8(onnx_fp32, paths[:32])

    flops = flops_per_image(engine.model)
    base_flops = flops_per_image(baseline_model())
    roof = gemm_rate()
    print(
        f"FLOPs per image: pynima {flops / 1e9:.3f} G, baseline {base_flops / 1e9:.3f} G; "
        f"fp32 GEMM rate {roof / 1e9:.0f} GFLOP/s"
    )

    engines = {
        "torch": lambda: Scorer(TorchEngine.from_checkpoint(ckpt)),
        "torch-bf16": lambda: Scorer(TorchEngine.from_checkpoint(ckpt, bf16=True)),
        "onnx": lambda: load(onnx_fp32),
        "openvino": lambda: load(onnx_fp32, engine="openvino"),
        "openvino-bf16": lambda: load(onnx_fp32, engine="openvino", bf16=True),
        "onnx-int8": lambda: load(onnx_int8),
    }
    rates: dict[str, list[float]] = {"baseline": []}
    rates.update({k: [] for k in engines})
    scorers = {k: make() for k, make in engines.items()}
    network: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(args.repeats):  # interleaved, so drift in machine speed hits every engine alike
        rates["baseline"].append(baseline_rate(paths, args.batch))
        for k, s in scorers.items():
            rates[k].append(scorer_rate(s, paths, args.batch))
            network[k].append(network_rate(s, args.batch))
    base = statistics.median(rates["baseline"])
    print(
        f"\n{'engine':14s} {'img/s':>8s} {'x baseline':>10s} {'% fp32 roof':>11s}   {'network alone':>13s} "
        f"{'% roof':>6s}   (median of {args.repeats})"
    )
    for k, v in rates.items():
        r = statistics.median(v)
        f = base_flops if k == "baseline" else flops
        alone = (
            f"{statistics.median(network[k]):13.1f} {100 * statistics.median(network[k]) * f / roof:5.1f}%"
            if k in network
            else ""
        )
        print(f"{k:14s} {r:8.1f} {r / base:10.2f} {100 * r * f / roof:10.1f}%   {alone}")
    decode, prep = preprocessing_ms(scorers["onnx"], paths[:64])
    print(f"preprocessing per image, one thread: decode {decode:.2f} ms, crop and normalize {prep:.2f} ms")

    one = paths[0]
    sidecar = exported_sidecar(ckpt)
    n = args.cold_runs
    print(
        f"\ncold start, pynima predict MODEL one.jpg (median of {n} fresh processes): "
        f"CKPT {cold_start(ckpt, one, reps=n):.2f} s ({'its export ' + sidecar.name if sidecar else 'no export'} "
        f"next to it), CKPT --engine torch {cold_start(ckpt, one, '--engine', 'torch', reps=n):.2f} s, "
        f".onnx {cold_start(onnx_fp32, one, reps=n):.2f} s, .onnx --engine openvino "
        f"{cold_start(onnx_fp32, one, '--engine', 'openvino', reps=n):.2f} s"
    )

    if args.data and args.split_file:
        import json

        from scipy import stats

        from pynima.datasets.splits import apply_split
        from pynima.datasets.tid2013 import read_tid2013

        records = apply_split(read_tid2013(args.data), json.loads(Path(args.split_file).read_text()), "test")
        mos = np.array([r.mos for r in records])
        srcc = {}
        for k, s in scorers.items():
            pred = np.array([sc.mean for _, sc, _ in s.score_paths([r.path for r in records], batch_size=32)])
            srcc[k] = float(stats.spearmanr(pred, mos).statistic)
        print(
            f"\nSRCC on {len(records)} test images: "
            + ", ".join(f"{k} {v:.4f} ({v - srcc['torch']:+.4f})" for k, v in srcc.items())
        )


if __name__ == "__main__":
    main()

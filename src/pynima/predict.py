"""Scoring images with a trained model: ``pynima.load(path).score(image_or_path)`` and ``pynima predict``.

Three engines run the same network: ``torch`` (a ``pynima train`` checkpoint, eager PyTorch, channels_last),
``onnx`` (a file from ``pynima export``, ONNX Runtime; needs neither torch nor timm, so it starts fastest; ``pynima
train`` writes ``best.onnx`` next to ``best.ckpt``, and ``load`` picks it up, see there) and ``openvino`` (the same
file on OpenVINO). All get identical inputs from one NumPy preprocessing path, which evaluation uses as well:

* ``crops="centre"``: the single centre 224x224 crop at native resolution, as in training and evaluation;
* ``crops="grid"``: 224x224 crops covering the image (3 x 2 on TID2013's 512x384; at most 4 x 4 evenly spaced
  crops on large photos), the distribution averaged over them;
* ``crops="full"``: the whole image at native resolution in one pass (the backbone is fully convolutional and pools
  globally), so no part of the picture is left out; images of the same size share network calls. How far a shift of
  a few pixels moves each mode's score: bench/shift_stability.py and docs/results.md. An ONNX file must have been
  exported with a dynamic image size (``pynima export`` writes one).

Images are decoded in a thread pool (Pillow releases the GIL while decoding), one batch ahead of the model, under
the decoding policy of ``pynima.data`` (``load_rgb`` for files, ``to_rgb`` for arrays and PIL images). The network gets
at most MAX_CROPS_PER_PASS crops per call, so memory does not grow with batch size times crops. Images smaller than
the crop on a side (but at least ``pynima.data.MIN_SIDE``) are zero-padded and scored with a warning
(``Score.warning``); a file that cannot be scored is reported and the others are scored.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from pynima.config import CROP_MODES, DEFAULT_CROPS, crop_mode
from pynima.data import IMAGE_SUFFIXES, display_name, load_rgb, to_rgb
from pynima.errors import NonFiniteError, PynimaError
from pynima.scale import BINS, CROP

__all__ = [
    "BUNDLED_MODEL",
    "DISTRIBUTION_TOLERANCE",
    "ENGINES",
    "MAX_CROPS_PER_PASS",
    "MAX_GRID",
    "MAX_PIXELS_PER_PASS",
    "MODEL_SUFFIXES",
    "OnnxEngine",
    "OpenVinoEngine",
    "Score",
    "Scorer",
    "TorchEngine",
    "any_size",
    "bundled_model",
    "check_crops",
    "check_distributions",
    "crop_boxes",
    "crops",
    "exported_sidecar",
    "hidden",
    "iter_image_paths",
    "load",
    "normalize",
    "onnx_providers",
    "torch_device",
    "walk_paths",
]

log = logging.getLogger(__name__)

DISTRIBUTION_TOLERANCE = 0.01  # how far a distribution may stray from non-negative and summing to 1 (bf16)
MAX_GRID = 4  # grid crops per side at most: a 12-megapixel photo gets 16 crops, not 250
MAX_CROPS_PER_PASS = 64  # crops per network call at most, whatever the batch size and crop mode
MAX_PIXELS_PER_PASS = MAX_CROPS_PER_PASS * CROP * CROP  # the same bound for whole images (crops="full")
BUNDLED_MODEL = "nima-tid2013-lite0.onnx"  # shipped inside the package; what it is: docs/model-card.md
MODEL_SUFFIXES = (".ckpt", ".onnx", ".pt", ".pth")  # how the CLI tells a model from an image


def bundled_model() -> Path:
    """The model that ships inside the package (docs/model-card.md), scored with when no model is given."""
    path = Path(__file__).with_name(BUNDLED_MODEL)
    if not path.is_file():
        raise PynimaError(
            f"this install has no bundled model ({path} is missing): give a model, a checkpoint "
            f"from pynima train or an .onnx file from pynima export"
        )
    return path


@dataclass(frozen=True)
class Score:
    mean: float  # predicted mean opinion score, 0-9
    std: float
    distribution: tuple[float, ...]  # probability of each score 0..9
    warning: str | None = None  # e.g. the image was smaller than the crop and was padded


def walk_paths(paths: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for files as given and image files under folders (recursively, sorted); (path, problem) for a
    path that does not exist, a folder without images and a subfolder that cannot be listed. See _walk_folder."""
    for p in map(Path, paths):
        if p.is_dir():
            yield from _walk_folder(p)
        elif p.exists() or p.is_symlink():
            yield p, None
        else:
            yield p, f"{display_name(p)}: no such file or folder"


def hidden(name: str) -> bool:
    """Whether a file or folder name is hidden: it starts with "." (.thumbnails, macOS's ._x.png AppleDouble files)."""
    return name.startswith(".")


def _walk_folder(top: Path) -> Iterator[tuple[Path, str | None]]:
    """The image files under a folder (by suffix; a folder's files by name, then its subfolders by name), and a
    (path, problem) row for each subfolder that cannot be listed, or for ``top`` if it holds no images.

    Symlinked subfolders are followed; each real folder is walked once: a link back to a folder above (a loop) or a
    second link to a folder already walked is one warning line and not walked again. Hidden files and folders (names
    starting with ".") are left out and counted in one INFO line. Files are not opened here (a FIFO with an image
    suffix is refused, unopened, by load_rgb)."""
    found = unlisted = hidden_files = hidden_dirs = 0
    errors: list[OSError] = []
    seen = {os.path.realpath(top)}

    def unlistable() -> Iterator[tuple[Path, str]]:  # folders os.walk could not list since the last call
        nonlocal unlisted
        while errors:
            e, unlisted = errors.pop(0), unlisted + 1
            yield Path(e.filename), f"{display_name(Path(e.filename))}: cannot list folder ({e.strerror})"

    for root, dirs, files in os.walk(top, onerror=errors.append, followlinks=True):
        hidden_dirs += sum(map(hidden, dirs))
        dirs[:] = [d for d in sorted(dirs) if not hidden(d) and _first_visit(Path(root) / d, seen)]
        for f in sorted(files):
            if Path(f).suffix.lower() in IMAGE_SUFFIXES:
                hidden_files += hidden(f)
                if not hidden(f):
                    found += 1
                    yield Path(root) / f, None
        yield from unlistable()
    yield from unlistable()
    if hidden_files or hidden_dirs:
        log.info(
            "%s: left out %d hidden image file(s) and %d hidden folder(s) (names starting with '.', such as "
            "macOS ._ files and .thumbnails); give them by name to score them",
            display_name(top),
            hidden_files,
            hidden_dirs,
        )
    if not found and not unlisted:
        yield (
            top,
            (f"{display_name(top)}: no images found (no file with an image suffix: .jpg, .png, .tif, .bmp, .webp...)"),
        )


def _first_visit(folder: Path, seen: set[str]) -> bool:
    """Whether ``folder`` leads to a real folder not walked yet (then it is marked walked); a warning if not."""
    real = os.path.realpath(folder)
    if real not in seen:
        seen.add(real)
        return True
    parent = os.path.realpath(folder.parent)
    loop = parent == real or parent.startswith(real.rstrip(os.sep) + os.sep)
    log.warning(
        "%s: not followed: %s %s",
        display_name(folder),
        "a symlink loop back to" if loop else "a second link to the folder",
        display_name(real),
    )
    return False


def iter_image_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given, and image files under folders (recursively, sorted); what cannot be listed is left out."""
    return (p for p, problem in walk_paths(paths) if problem is None)


# ---------------------------------------------------------------------------------------------- preprocessing


def _offsets(length: int, n: int) -> list[int]:
    if n == 1:
        return [int(round((length - CROP) / 2.0))]  # torchvision CenterCrop's rounding, so evaluation matches training
    return [round(i * (length - CROP) / (n - 1)) for i in range(n)]


def check_crops(mode: str, engine=None) -> None:
    """Refuse, in one PynimaError line, a crop mode that is not one of CROP_MODES, or ``"full"`` with an ``engine``
    whose network takes 224x224 crops only (an ONNX file exported before image sizes were dynamic)."""
    if crop_mode(mode) not in CROP_MODES:
        raise PynimaError(f"crops must be one of {', '.join(CROP_MODES)}, got {mode!r}")
    if mode == "full" and not getattr(engine, "any_size", True):
        raise PynimaError(
            f"crops full needs a model exported with a dynamic image size; this ONNX file takes "
            f"{CROP}x{CROP} crops only (re-export its checkpoint with pynima export, or score with "
            f"crops centre or grid)"
        )


def crop_boxes(height: int, width: int, mode: str = "centre") -> list[tuple[int, int]]:
    """Top-left corners of the 224x224 crops of an image (see the module docstring)."""
    check_crops(mode)
    mode = crop_mode(mode)
    if mode == "full":
        return [(0, 0)]
    if mode == "centre" or (height <= CROP and width <= CROP):
        ny = nx = 1
    else:
        ny, nx = (min(MAX_GRID, max(1, math.ceil(s / CROP))) for s in (height, width))
    return [(y, x) for y in _offsets(height, ny) for x in _offsets(width, nx)]


def crops(image: np.ndarray, mode: str = "centre") -> np.ndarray:
    """(n, 224, 224, 3) uint8 crops, or with ``mode="full"`` the whole image as (1, H, W, 3); an image smaller than
    224 on a side is zero-padded around its centre to at least 224, as torchvision's CenterCrop does."""
    h, w = image.shape[:2]
    if h < CROP or w < CROP:
        padded = np.zeros((max(h, CROP), max(w, CROP), 3), np.uint8)
        y, x = (padded.shape[0] - h) // 2, (padded.shape[1] - w) // 2
        padded[y : y + h, x : x + w] = image
        image, (h, w) = padded, padded.shape[:2]
    if mode == "full":
        return image[None]
    return np.stack([image[y : y + CROP, x : x + CROP] for y, x in crop_boxes(h, w, mode)])


def normalize(batch: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 NHWC crops -> float32 NCHW network input, (x / 255 - mean) / std."""
    scale = (np.float32(1 / 255) / np.asarray(std, np.float32))[:, None, None]
    shift = (np.asarray(mean, np.float32) / np.asarray(std, np.float32))[:, None, None]
    # Transposed while still uint8, then one contiguous float copy and two in-place passes: several times faster than
    # scaling first and transposing the float result (docs/performance.md), bit-identical numbers.
    x = batch.transpose(0, 3, 1, 2).astype(np.float32, order="C")
    x *= scale
    x -= shift
    return x


# ---------------------------------------------------------------------------------------------- engines


def torch_device(name: str):
    """``name`` ("cpu", "cuda", "cuda:1", "mps") as a torch.device, or a one-line PynimaError when this machine or
    this torch build has no such device (instead of a CUDA traceback at the first call)."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise PynimaError(f"device {name!r}: not a device (cpu, cuda, cuda:N or mps)") from None
    available = {
        "cuda": torch.cuda.is_available,
        "mps": lambda: getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
    }
    if device.type in available and not available[device.type]():
        raise PynimaError(
            f"device {name}: not available on this machine (torch {torch.__version__} sees no "
            f"{device.type.upper()} device); use cpu"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise PynimaError(f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def onnx_providers(device: str) -> list:
    """ONNX Runtime's execution providers for ``device``: the CPU's, or CUDA's (onnxruntime-gpu) with the CPU's as
    the fallback for operators CUDA lacks; a one-line PynimaError when this onnxruntime cannot run there."""
    import onnxruntime as ort

    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return ["CPUExecutionProvider"]
    if kind != "cuda" or (index and not index.isdigit()):
        raise PynimaError(f"device {device!r}: ONNX Runtime runs on cpu or cuda[:N] here; for mps use --engine torch")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise PynimaError(
            f"device {device}: this onnxruntime ({ort.__version__}) has no CUDA provider; install "
            f"onnxruntime-gpu in its place (a checkpoint also runs with --engine torch on a CUDA "
            f"build of torch)"
        )
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


class TorchEngine:
    """Eager PyTorch, channels_last, inference mode, on ``device`` (cpu, cuda[:N], mps); ``bf16`` runs it under
    bfloat16 autocast."""

    name = "torch"

    def __init__(self, model, backbone: str, bf16: bool = False, source: str = "the network", device: str = "cpu"):
        import torch

        from pynima.model import normalization

        self.device = torch_device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.backbone, self.bf16, self.source = backbone, bf16, source
        self.any_size = True  # fully convolutional: any image size (crops="full")
        self.metadata: dict[str, str] = {}  # what pynima export writes into an .onnx; a checkpoint has none
        self.mean, self.std = normalization(backbone)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            t = torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)
            return self.model(t).float().cpu().numpy()

    @classmethod
    def from_checkpoint(cls, ckpt: str | Path, bf16: bool = False, device: str = "cpu") -> TorchEngine:
        """The network of a ``pynima train`` checkpoint, built without Lightning (faster start)."""
        from pynima.model import load_checkpoint

        device = str(torch_device(device))  # a missing device is refused before the checkpoint is read
        model, hp = load_checkpoint(ckpt)
        return cls(model, hp["backbone"], bf16=bf16, source=str(ckpt), device=device)


def any_size(inputs: list) -> bool:
    """Whether an ONNX network's input (shape as in ``_preprocessing``) takes any image size (``crops="full"``)."""
    return not any(isinstance(d, int) and d >= 0 for d in inputs[0][2:])


def _preprocessing(
    path: str | Path, meta: dict[str, str], inputs: list, outputs: list
) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    """(backbone, mean, std) from the metadata ``pynima export`` writes into an ONNX file, once the file is known to be
    a NIMA network: one input of N x 3 x 224 x 224 (or N x 3 x H x W, any size) and one output of N x 10
    (``inputs``/``outputs``: their shapes, a dynamic dimension as anything but an int). Any other ONNX file is
    refused rather than scored wrongly."""
    if not {"pynima_backbone", "pynima_mean", "pynima_std"} <= set(meta):
        raise PynimaError(f"{path}: not exported by pynima export (no pynima metadata)")
    fixed = [[d if isinstance(d, int) and d >= 0 else None for d in shape] for shape in (*inputs, *outputs)]
    if (
        len(inputs) != 1
        or len(outputs) != 1
        or fixed[0][1:] not in ([3, CROP, CROP], [3, None, None])
        or fixed[1][1:] != [10]
    ):
        raise PynimaError(
            f"{path}: not a NIMA network (inputs {inputs}, outputs {outputs}; expected one input "
            f"N x 3 x H x W (or N x 3 x {CROP} x {CROP}) and one output N x 10)"
        )
    try:
        mean, std = (tuple(float(v) for v in meta[k].split(",")) for k in ("pynima_mean", "pynima_std"))
    except ValueError:
        mean = std = ()
    if len(mean) != 3 or len(std) != 3 or not all(map(math.isfinite, mean + std)) or min(std) <= 0:
        raise PynimaError(
            f"{path}: malformed pynima metadata (mean {meta['pynima_mean']!r}, std {meta['pynima_std']!r})"
        )
    return meta["pynima_backbone"], mean, std


class OnnxEngine:
    """ONNX Runtime on the CPU, or on a CUDA GPU (``device="cuda"``, with onnxruntime-gpu); the preprocessing
    constants travel in the model's metadata."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu"):
        import onnxruntime as ort

        providers = onnx_providers(device)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for missing and malformed files
            raise PynimaError(f"{path}: cannot load ONNX model ({str(e).splitlines()[0]})") from None
        if device != "cpu" and self.session.get_providers()[0] != "CUDAExecutionProvider":
            # onnxruntime falls back to the CPU with a log line when CUDA cannot start (no driver, no GPU)
            raise PynimaError(
                f"device {device}: ONNX Runtime could not start CUDA here (no GPU, or its driver or "
                f"CUDA libraries missing)"
            )
        self.device = device
        self.source = str(path)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)  # what pynima export wrote: backbone, normalization, and what the model is
        shapes = [i.shape for i in self.session.get_inputs()], [o.shape for o in self.session.get_outputs()]
        self.backbone, self.mean, self.std = _preprocessing(path, meta, *shapes)
        self.any_size = any_size(shapes[0])  # False for an older export of 224x224 crops only
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: x})[0]


class OpenVinoEngine:
    """OpenVINO on the CPU, reading the same ONNX file as the onnx engine (and its metadata).

    ``precision="f32"`` is the default and is forced: on CPUs with AMX or AVX-512 BF16, OpenVINO would otherwise
    silently run in bfloat16. ``"bf16"`` opts in to that (faster there, not bit-equal: docs/performance.md gives its
    SRCC cost on a trained model).
    The LATENCY hint (all cores on one request): faster than THROUGHPUT (parallel streams) on a 2-core machine
    (docs/performance.md).
    """

    name = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None, precision: str = "f32"):
        import openvino as ov
        from openvino.frontend import FrontEndManager

        if precision not in ("f32", "bf16"):
            raise PynimaError(f"openvino precision must be f32 or bf16, got {precision!r}")
        if not Path(path).is_file():
            raise PynimaError(f"{path}: no such ONNX file")
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:  # the ONNX frontend only: Core.read_model would also try (and log from) the TensorFlow readers
            onnx = FrontEndManager().load_by_framework("onnx")
            model = onnx.convert(onnx.load(str(path)))
            info = model.get_rt_info()  # the ONNX file's metadata_props, as OpenVINO exposes them
            meta = {k: str(v.astype(str)) for k, v in info["framework"].items()} if "framework" in info else {}
        except Exception as e:  # OpenVINO's exception types carry a multi-line trace; its last line says what
            raise PynimaError(f"{path}: cannot load ONNX model ({str(e).strip().splitlines()[-1]})") from None
        shapes = [
            [[d.get_length() if d.is_static else None for d in port.get_partial_shape()] for port in ports]
            for ports in (model.inputs, model.outputs)
        ]
        self.metadata, self.source = meta, str(path)
        self.backbone, self.mean, self.std = _preprocessing(path, meta, *shapes)
        self.any_size = any_size(shapes[0])
        self.request = ov.Core().compile_model(model, "CPU", config).create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.request.infer({0: x})[0].copy()  # the output buffer is reused by the next call


# ---------------------------------------------------------------------------------------------- scoring


def check_distributions(p: np.ndarray, source: str) -> np.ndarray:
    """``p`` (N, 10) if every row is a probability distribution (finite, non-negative, summing to 1 within
    DISTRIBUTION_TOLERANCE, which bfloat16 rounding stays inside); else one error line naming ``source``. A diverged
    model (NaN weights) or an ONNX file without its softmax would otherwise give NaN or negative scores."""
    if not np.isfinite(p).all():
        raise NonFiniteError(
            f"{source}: the network's output is not finite (NaN or infinity): a diverged model; "
            f"retrain it with lower learning rates"
        )
    sums = p.sum(-1)
    if (
        p.ndim != 2
        or p.shape[1] != BINS
        or p.min() < -DISTRIBUTION_TOLERANCE
        or np.abs(sums - 1).max() > DISTRIBUTION_TOLERANCE
    ):
        raise PynimaError(
            f"{source}: the network's output is not a probability distribution over {BINS} bins "
            f"(values {p.min():.4g} to {p.max():.4g}, rows summing to {sums.min():.4g} to "
            f"{sums.max():.4g}); a model exported without its softmax?"
        )
    return p


class Scorer:
    """A trained NIMA model ready to score images. The network is tried on a grey image when the Scorer is made, and
    every output is checked (``check_distributions``): a model that does not give probabilities is refused, never
    scored."""

    def __init__(self, engine, crops: str = DEFAULT_CROPS, threads: int | None = None):
        check_crops(crops, engine)
        self.engine, self.crops = engine, crop_mode(crops)
        self.threads = threads or min(4, os.cpu_count() or 1)
        grey = normalize(np.full((1, CROP, CROP, 3), 128, np.uint8), engine.mean, engine.std)
        check_distributions(np.asarray(engine(grey), np.float64), getattr(engine, "source", "the network"))

    def _crops(self, image, max_value: float | None = None) -> tuple[np.ndarray, str | None]:
        """(n_crops, 224, 224, 3) uint8 crops of one image, and its warning, if any (see crops_of)."""
        notes: list[str] = []
        if isinstance(image, (str, os.PathLike)):
            name, rgb = image, load_rgb(image, notes)
        else:
            name, rgb = getattr(image, "filename", "") or "image array", to_rgb(image, max_value, notes)
        return self.crops_of(rgb, name, notes)

    def crops_of(self, rgb: np.ndarray, name: object, notes: Iterable[str] = ()) -> tuple[np.ndarray, str | None]:
        """(n_crops, 224, 224, 3) uint8 crops of a decoded (H, W, 3) uint8 image, and one warning line naming ``name``
        if decoding left ``notes`` (a multi-page TIFF, an ICC profile not applied) or the image had to be padded
        (pynima.ray decodes files read from object storage itself, then comes here)."""
        h, w = rgb.shape[:2]
        problems = list(notes)
        if h < CROP or w < CROP:
            problems.append(
                f"{w}x{h} is smaller than the {CROP}x{CROP} crop; scored with zero padding, so the score "
                f"is less reliable"
            )
        return crops(rgb, self.crops), f"{display_name(name)}: {'; '.join(problems)}" if problems else None

    def inputs(self, image, max_value: float | None = None) -> np.ndarray:
        """Network input of one image (a path, an array or a PIL image, see ``score``): (n_crops, 3, 224, 224)."""
        x, warning = self._crops(image, max_value)
        if warning:
            log.warning(warning)
        return normalize(x, self.engine.mean, self.engine.std)

    def distributions(self, inputs: list[np.ndarray]) -> np.ndarray:
        """(N, 10) distributions, each averaged over its image's crops. ``inputs``: per image, its network input
        (float, from ``inputs``) or its uint8 crops (normalized here, a chunk at a time). The network gets at most
        MAX_PIXELS_PER_PASS pixels (MAX_CROPS_PER_PASS crops) per call, or one whole image if it is larger."""

        def run(x: np.ndarray) -> np.ndarray:
            if x.dtype == np.uint8:
                x = normalize(x, self.engine.mean, self.engine.std)
            return check_distributions(
                np.asarray(self.engine(x), np.float64), getattr(self.engine, "source", "the network")
            )

        # inputs of one spatial size share network calls (224 crops always; whole images when sizes repeat)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(inputs):
            by_size.setdefault(x.shape[1:], []).append(i)
        per_image: list[np.ndarray | None] = [None] * len(inputs)
        for members in by_size.values():
            every = np.concatenate([inputs[i] for i in members])
            step = max(
                1, MAX_PIXELS_PER_PASS // math.prod(every.shape[1:3] if every.dtype == np.uint8 else every.shape[2:])
            )
            p = np.concatenate([run(every[i : i + step]) for i in range(0, len(every), step)])
            for i, part in zip(members, np.split(p, np.cumsum([len(inputs[i]) for i in members])[:-1]), strict=True):
                per_image[i] = part.mean(0)
        return np.stack(per_image) if per_image else np.zeros((0, 10))

    def scores(self, inputs: list[np.ndarray], warnings: list[str | None] | None = None) -> list[Score]:
        from pynima.labels import moments

        p = self.distributions(inputs)
        m, s = moments(p)
        warnings = warnings or [None] * len(p)
        return [
            Score(float(a), float(b), tuple(float(v) for v in row), w)
            for a, b, row, w in zip(m, s, p, warnings, strict=True)
        ]

    def score(self, image, max_value: float | None = None) -> Score:
        """Score one image: a path, a NumPy array or a PIL image, decoded under the policy of pynima.data.to_rgb.

        ``max_value``: the white level of a float or high-bit array (1.0 for floats in [0, 1], 4095 for 12-bit);
        uint8 and uint16 arrays need none. Raises DatasetError (one line) for an image it cannot score; an image
        smaller than the crop is padded, logged and flagged in ``Score.warning``.
        """
        x, warning = self._crops(image, max_value)
        if warning:
            log.warning(warning)
        return self.scores([x], [warning])[0]

    def __call__(self, images, max_value: float | None = None) -> list[Score]:
        """Score a batch in one go, as torchmetrics and pyiqa metrics are called.

        Args:
            images: a list or tuple of images (paths, NumPy arrays, PIL images, as ``score`` takes them), an
                (N, H, W, C) NumPy array, or an (N, C, H, W) torch tensor (the torch convention, as ``pynima.metric``
                takes it: uint8, or floats in [0, 1]).
            max_value: the white level of float or high-bit arrays (``score``); 1.0 for a float tensor if not given.

        Returns:
            One Score per image, in order. An image that cannot be scored raises a one-line DatasetError naming it
            (its path, or its position in the batch); ``score_paths`` instead reports and skips bad files.
        """
        if hasattr(images, "detach") and hasattr(images, "permute"):  # a torch tensor, without importing torch
            if images.ndim != 4:
                raise PynimaError(f"a tensor batch must be (N, C, H, W), got shape {tuple(images.shape)}")
            if max_value is None and images.is_floating_point():
                max_value = 1.0
            images = list(images.detach().cpu().permute(0, 2, 3, 1).numpy())
        elif isinstance(images, np.ndarray):
            if images.ndim != 4:
                raise PynimaError(
                    f"an array batch must be (N, H, W, C), got shape {images.shape}; score one image with Scorer.score"
                )
            images = list(images)
        elif isinstance(images, (str, os.PathLike)) or not isinstance(images, (list, tuple)):
            raise PynimaError(
                f"a batch is a list of images, an (N, H, W, C) array or an (N, C, H, W) tensor, got "
                f"{type(images).__name__}; score one image with Scorer.score"
            )
        inputs, warnings = [], []
        for i, image in enumerate(images):
            try:
                x, warning = self._crops(image, max_value)
            except PynimaError as e:
                if isinstance(image, (str, os.PathLike)):
                    raise
                raise type(e)(f"image {i} of the batch: {e}") from None
            if warning:
                log.warning(warning)
            inputs.append(x)
            warnings.append(warning)
        return self.scores(inputs, warnings) if inputs else []

    def prepare(self, path: Path) -> tuple[np.ndarray, str | None] | str:
        try:
            return self._crops(path)
        except PynimaError as e:
            return str(e)

    def score_paths(
        self, paths: Iterable[str | Path], batch_size: int = 16
    ) -> Iterator[tuple[Path, Score | None, str | None]]:
        """(path, score, None) per scored image, (path, None, problem) per file that cannot be scored, in input order.

        Folders are walked recursively for IMAGE_SUFFIXES (symlinked subfolders followed once, hidden names left
        out: see _walk_folder). A path that does not exist, a folder without images and each unreadable file give a
        (path, None, problem) row and the other images are still scored. Warnings (padded small images, multi-page
        TIFF, an ICC profile not applied) are in ``Score.warning``, not logged. Messages name files with
        ``display_name`` (escaped, one line); the paths yielded are the real ones.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise PynimaError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch_size = int(batch_size)
        # not a generator itself, so a bad batch_size raises here
        return self._score_paths(walk_paths(paths), batch_size)

    def _score_paths(
        self, it: Iterator[tuple[Path, str | None]], batch_size: int
    ) -> Iterator[tuple[Path, Score | None, str | None]]:
        with ThreadPoolExecutor(self.threads) as pool:

            def submit() -> tuple[list[Path], list]:
                chunk = list(islice(it, batch_size))
                return [p for p, _ in chunk], [problem or pool.submit(self.prepare, p) for p, problem in chunk]

            pending = submit()
            while pending[0]:
                chunk, futures = pending
                pending = submit()  # the next batch decodes while this one runs through the network
                loaded = [f if isinstance(f, str) else f.result() for f in futures]
                good = [x for x in loaded if not isinstance(x, str)]
                scores = iter(self.scores([x for x, _ in good], [w for _, w in good])) if good else iter(())
                for path, x in zip(chunk, loaded, strict=True):
                    yield (path, None, x) if isinstance(x, str) else (path, next(scores), None)


def exported_sidecar(ckpt: str | Path) -> Path | None:
    """The ONNX export next to a checkpoint (``best.onnx`` for ``best.ckpt``, written by ``pynima train`` and
    ``pynima export``), if it exists and is not older than the checkpoint."""
    onnx = Path(ckpt).with_suffix(".onnx")
    try:
        return onnx if onnx.stat().st_mtime >= Path(ckpt).stat().st_mtime else None
    except OSError:
        return None


ENGINES = ("auto", "torch", "onnx", "openvino")


def load(
    path: str | Path | None = None,
    engine: str | None = None,
    crops: str = DEFAULT_CROPS,
    bf16: bool = False,
    device: str = "cpu",
) -> Scorer:
    """A Scorer for a ``pynima train`` checkpoint or a ``pynima export`` ONNX file; with no ``path``, for the model
    bundled with pynima (``bundled_model()``).

    ``engine``: ``onnx`` (ONNX Runtime) or ``openvino`` (both read the ONNX file, or the up-to-date export next to a
    checkpoint), ``torch``, or None/``auto``: an ``.onnx`` file runs on ONNX Runtime, and so does a checkpoint with an
    up-to-date export next to it (same network, distributions equal to 1e-4; it starts in a fraction of the time
    because it needs neither torch nor timm); other checkpoints run on PyTorch. ``bf16``: bfloat16 arithmetic on the
    torch and openvino engines (auto then picks openvino for an export), faster on CPUs with AMX or AVX-512 BF16 but
    not bit-equal, so measure it on your data (``bench/throughput.py`` does). ``device``: ``cpu``, or ``cuda[:N]``
    (the onnx engine with onnxruntime-gpu installed, or the torch engine with a CUDA build of torch) or ``mps``
    (torch); a device this machine lacks is a one-line PynimaError.
    """
    path = bundled_model() if path is None else Path(path)
    exported = path if path.suffix.lower() == ".onnx" else exported_sidecar(path)
    if engine in (None, "auto") and exported is not None and exported != path:
        try:  # the export next to a checkpoint is a cache of it: if it cannot be used, the checkpoint still can
            return load(exported, engine="openvino" if bf16 else "onnx", crops=crops, bf16=bf16, device=device)
        except PynimaError as e:
            log.warning("%s; scoring with the checkpoint on PyTorch instead", e)
            exported = None
    if engine in (None, "auto"):
        engine = ("openvino" if bf16 else "onnx") if exported else "torch"
    if engine not in ENGINES:
        raise PynimaError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine in ("onnx", "openvino"):
        if exported is None:
            raise PynimaError(f"{path}: the {engine} engine needs an .onnx file; make one with: pynima export {path}")
        if engine == "onnx":
            if bf16:
                raise PynimaError("bf16 runs on the torch and openvino engines, not onnx")
            return Scorer(OnnxEngine(exported, device=device), crops=crops)
        if device != "cpu":
            raise PynimaError(f"device {device}: the openvino engine runs on the CPU here; use --engine onnx or torch")
        return Scorer(OpenVinoEngine(exported, precision="bf16" if bf16 else "f32"), crops=crops)
    if path.suffix.lower() == ".onnx":
        raise PynimaError(f"{path}: an ONNX file runs on the onnx or openvino engine (--engine onnx)")
    return Scorer(TorchEngine.from_checkpoint(path, bf16=bf16, device=device), crops=crops)

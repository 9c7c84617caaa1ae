"""The engines that run the network: ``TorchEngine`` (a checkpoint, eager PyTorch), ``OnnxEngine`` (ONNX Runtime,
no torch needed) and ``OpenVinoEngine``; devices and providers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pynima.errors import PynimaError
from pynima.scale import CROP
from pynima.scoring.preprocess import any_size, preprocessing

__all__ = [
    "MAX_CROPS_PER_PASS",
    "MAX_PIXELS_PER_PASS",
    "OnnxEngine",
    "OpenVinoEngine",
    "TorchEngine",
    "onnx_providers",
    "torch_device",
]

MAX_CROPS_PER_PASS = 64  # crops per network call at most, whatever the batch size and crop mode


MAX_PIXELS_PER_PASS = MAX_CROPS_PER_PASS * CROP * CROP  # the same bound for whole images (crops="full")


def torch_device(name: str):
    """``name`` ("cpu", "cuda", "cuda:1", "mps") as a torch.device, or a one-line PynimaError when this machine or
    this torch build has no such device (instead of a CUDA traceback at the first call).
    """
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
    the fallback for operators CUDA lacks; a one-line PynimaError when this onnxruntime cannot run there.
    """
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
    bfloat16 autocast.
    """

    name = "torch"

    def __init__(self, model, backbone: str, bf16: bool = False, source: str = "the network", device: str = "cpu"):
        import torch

        from pynima.model.network import normalization

        self.device = torch_device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.backbone, self.bf16, self.source = backbone, bf16, source
        self.any_size = True  # fully convolutional: any image size (crops="full")
        self.metadata: dict[str, str] = {}  # what pynima export writes into an .onnx; a checkpoint has none
        self.mean, self.std = normalization(backbone)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, 10) probabilities for a float32 (N, 3, H, W) batch of normalized crops or whole images."""
        import torch

        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            t = torch.from_numpy(x).to(self.device).contiguous(memory_format=torch.channels_last)
            return self.model(t).float().cpu().numpy()

    @classmethod
    def from_checkpoint(cls, ckpt: str | Path, bf16: bool = False, device: str = "cpu") -> TorchEngine:
        """The network of a ``pynima train`` checkpoint, built without Lightning (faster start)."""
        from pynima.model.network import load_checkpoint

        device = str(torch_device(device))  # a missing device is refused before the checkpoint is read
        model, hp = load_checkpoint(ckpt)
        return cls(model, hp["backbone"], bf16=bf16, source=str(ckpt), device=device)


class OnnxEngine:
    """ONNX Runtime on the CPU, or on a CUDA GPU (``device="cuda"``, with onnxruntime-gpu); the preprocessing
    constants travel in the model's metadata.
    """

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
        self.backbone, self.mean, self.std = preprocessing(path, meta, *shapes)
        self.any_size = any_size(shapes[0])  # False for an older export of 224x224 crops only
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, 10) probabilities for a float32 (N, 3, H, W) batch of normalized crops or whole images."""
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
        self.backbone, self.mean, self.std = preprocessing(path, meta, *shapes)
        self.any_size = any_size(shapes[0])
        self.request = ov.Core().compile_model(model, "CPU", config).create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N, 10) probabilities for a float32 (N, 3, H, W) batch of normalized crops or whole images."""
        return self.request.infer({0: x})[0].copy()  # the output buffer is reused by the next call

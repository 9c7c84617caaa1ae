"""``pynima export``: a trained checkpoint as an ONNX file (dynamic batch and image size), optionally int8.

The ONNX file holds the network only (input ``image``: N x 3 x H x W float32, normalized, any batch and image size,
so it scores 224 crops and whole images alike (``crops="full"``); output
``distribution``: N x 10); the backbone name and its normalization travel in the file's metadata, so
``pynima predict model.onnx`` (the ``onnx`` engine, pynima.scoring) preprocesses exactly as the torch engine does.

int8: static quantization by ONNX Runtime (QDQ, per-channel weights, activations calibrated on images you give),
which runs on the CPU's integer dot-product units (VNNI/AMX). Its accuracy cost is measured, not assumed: with a
labelled dataset, ``export`` prints the SRCC of fp32 and int8 on the same images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pynima.errors import PynimaError
from pynima.files import atomic_path, temporary_sibling

__all__ = ["OPSET", "RESERVED_METADATA", "add_metadata", "export_onnx", "quantize_int8"]

OPSET = 18
# metadata every export writes and scoring reads: --metadata may not replace them
RESERVED_METADATA = ("backbone", "mean", "std", "version", "source")


def add_metadata(path: Path, meta: dict[str, str]) -> None:
    """Write ``meta`` into an ONNX file's metadata (keys given replace those there), atomically: the file is whole,
    old or new, whatever stops the process.
    """
    import onnx

    model = onnx.load(str(path))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    for k, v in kept + list(meta.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    with atomic_path(Path(path)) as tmp:
        onnx.save(model, str(tmp))


def _export_any_size(model, path: Path) -> None:
    """``model`` as ONNX with the batch and both image sides dynamic.

    Written with torch's TorchScript exporter while torch has it: with symbolic image sides, the dynamo exporter
    reasons about the input-dependent padding of timm's TF-style ("same") convolutions and takes minutes where the
    TorchScript exporter takes seconds, for the same graph (ONNX Runtime agrees with PyTorch to 1e-6 on both). Where
    the TorchScript exporter is gone, the dynamo exporter writes the file.
    """
    import warnings

    import torch

    example = (torch.zeros(2, 3, 224, 224),)
    names = {"input_names": ["image"], "output_names": ["distribution"], "opset_version": OPSET}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
            torch.onnx.export(
                model,
                example,
                str(path),
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "distribution": {0: "batch"}},
                dynamo=False,
                **names,
            )
        return
    except (TypeError, RuntimeError, NotImplementedError):  # a torch without the TorchScript exporter
        pass
    dims = {
        0: torch.export.Dim("batch", min=1, max=4096),
        2: torch.export.Dim("height", min=32),
        3: torch.export.Dim("width", min=32),
    }
    torch.onnx.export(
        model, example, str(path), dynamic_shapes=(dims,), dynamo=True, external_data=False, verbose=False, **names
    )


def export_onnx(ckpt: str | Path, out: str | Path | None = None, metadata: dict[str, str] | None = None) -> Path:
    """Write the checkpoint's network as ONNX (batch and image size dynamic: ``_export_any_size``). The file
    appears complete, with its metadata, or not at all (written to a temporary sibling, then renamed).

    ``metadata``: more ``key: value`` pairs saying what the model is (name, data, licence of its labels), stored
    as ``pynima_<key>`` next to the preprocessing keys every export carries.
    """
    import torch

    from pynima import __version__
    from pynima.scoring.engines import TorchEngine

    clash = sorted(k for k in metadata or {} if k.removeprefix("pynima_") in RESERVED_METADATA)
    if clash:
        raise PynimaError(
            f"metadata {', '.join(clash)} is written by pynima export itself (the preprocessing scoring "
            f"relies on); choose other keys"
        )

    out = Path(out) if out else Path(ckpt).with_suffix(".onnx")
    if out.suffix.lower() != ".onnx":  # --out best.ckpt would have written over the checkpoint it exports
        raise PynimaError(f"{out}: an export is an .onnx file; give --out a name ending in .onnx")
    if out.exists() and Path(ckpt).exists() and out.resolve() == Path(ckpt).resolve():
        raise PynimaError(f"{out}: is the input itself; give --out another file")
    engine = TorchEngine.from_checkpoint(ckpt)
    model = engine.model.to(memory_format=torch.contiguous_format)
    with atomic_path(out) as tmp:
        _export_any_size(model, tmp)
        add_metadata(
            tmp,
            {
                "pynima_backbone": engine.backbone,
                "pynima_mean": ",".join(map(str, engine.mean)),
                "pynima_std": ",".join(map(str, engine.std)),
                "pynima_version": __version__,
                "pynima_source": Path(ckpt).name,
            }
            | {f"pynima_{k.removeprefix('pynima_')}": v for k, v in (metadata or {}).items()},
        )
    return out


class _Calibration:
    """Feeds calibration images to ONNX Runtime's quantizer, one batch at a time."""

    def __init__(self, batches: list[np.ndarray]):
        self.batches = iter(batches)

    def get_next(self):
        x = next(self.batches, None)
        return None if x is None else {"image": x}


def quantize_int8(fp32: str | Path, calibration: list[Path], out: str | Path | None = None) -> Path:
    """Static int8 quantization of an exported model, activation ranges calibrated on ``calibration`` images."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pynima.scoring.engines import OnnxEngine
    from pynima.scoring.scorer import Scorer

    if not calibration:
        raise PynimaError("int8 quantization needs calibration images (--calibration DIR)")
    fp32 = Path(fp32)
    out = Path(out) if out else fp32.with_name(fp32.stem + ".int8.onnx")
    scorer = Scorer(OnnxEngine(fp32))
    inputs = [scorer.inputs(p) for p in calibration]
    batches = [np.concatenate(inputs[i : i + 16]) for i in range(0, len(inputs), 16)]
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    prepped = temporary_sibling(out)  # quant_pre_process's output, an intermediate
    try:
        with atomic_path(out) as tmp:
            quant_pre_process(str(fp32), str(prepped))
            # the softmax stays float: an 8-bit output would be a distribution summing to 1 only within 10 / 255
            softmax = [n.name for n in onnx.load(str(prepped)).graph.node if n.op_type == "Softmax"]
            quantize_static(
                str(prepped),
                str(tmp),
                _Calibration(batches),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=softmax,
            )
            add_metadata(tmp, meta | {"pynima_quantization": f"int8 static QDQ, {len(calibration)} calibration images"})
    finally:
        prepped.unlink(missing_ok=True)
    return out

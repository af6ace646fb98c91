"""Predict the .om on the host: each artifact (checkpoint, ONNX, Caffe) run the way Ascend 310 computes under
atc's default force_fp16. The model of the device is one table, device.DEVICE_MODEL; torch_emu, onnx_emu and
caffe_emu apply it to each format, all behind the Backend protocol (backends.py)."""
from __future__ import annotations

from pathlib import Path

from .device import DEVICE_MODEL, FP16_MAX, FP16_MIN_NORMAL, round16


def open_fp16_backend(artifact: str | Path, threads: int = 2):
    """Checkpoint -> torch emulator; .onnx -> onnxruntime emulator; .prototxt -> pycaffe emulator."""
    path = Path(artifact)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .onnx_emu import Fp16OnnxBackend

        return Fp16OnnxBackend(path, threads)
    if suffix == ".prototxt":
        from .caffe_emu import Fp16CaffeBackend

        return Fp16CaffeBackend(path)
    from ..backends import open_backend
    from .torch_emu import Fp16TorchBackend

    return Fp16TorchBackend(open_backend(path, threads).model)


__all__ = ["DEVICE_MODEL", "FP16_MAX", "FP16_MIN_NORMAL", "open_fp16_backend", "round16"]

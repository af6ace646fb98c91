"""One interface for every runtime: `Backend.run(x) -> alpha`, x a 1xCxHxW normalised float32 tensor
(C = 3, or 4 with the previous alpha as channel 3), alpha 1x1xHxW. verify, compare and matte use only this.
A new format is a class here plus its loader; `open_backend` picks one by file suffix."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .errors import MatteconvError


class Backend(Protocol):
    name: str
    in_channels: int
    size: tuple[int, int] | None  # fixed model input size (H, W), or None when any multiple of 32 works

    def run(self, x: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    """The PyTorch model, in float32 (the noise floor) or float64 (the golden reference)."""

    name = "torch"
    size = None

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype = torch.float32, threads: int | None = None):
        self.model = model.to(dtype).eval()
        self.dtype = dtype
        self.in_channels = model.in_channels
        self.threads = threads

    def run(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.dtype)
        with torch.no_grad():
            if self.model.split_inputs:
                return self.model(t[:, :3], t[:, 3:4]).numpy()
            return self.model(t).numpy()


def ort_session(model: str | Path | bytes, threads: int = 2, where: str | Path = "model"):
    """The one way we open onnxruntime: CPU, `threads` intra-op threads, quiet; load errors are one line.
    Spinning is off: idle onnxruntime threads otherwise spin after each run and steal the cores from the
    matte pipeline's decode/encode threads (and from whatever is timed next in a benchmark)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model if isinstance(model, bytes) else str(model), so,
                                    providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise MatteconvError(f"{where}: onnxruntime cannot load it: {str(e).splitlines()[0]}") from None


class OnnxBackend:
    """An ONNX file in onnxruntime (CPU). Split-input models (image + prev_alpha) get the tensor split."""

    name = "onnx"

    def __init__(self, path: str | Path, threads: int = 2):
        self.path = Path(path)
        if not self.path.exists():
            raise MatteconvError(f"{self.path}: ONNX model not found")
        self.session = ort_session(self.path, threads, self.path)
        inputs = self.session.get_inputs()
        problem = modnet_io_problem([i.shape for i in inputs], [o.shape for o in self.session.get_outputs()])
        if problem:
            raise MatteconvError(f"{self.path}: not a MODNet matting model: {problem}")
        self.input_names = [i.name for i in inputs]
        self.in_channels = sum(int(i.shape[1]) for i in inputs)
        h, w = inputs[0].shape[2:4]
        self.size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(self.input_names) == 2:
            feeds = {self.input_names[0]: x[:, :3], self.input_names[1]: x[:, 3:4]}
        else:
            feeds = {self.input_names[0]: x}
        return self.session.run(None, feeds)[0]


def modnet_io_problem(inputs: list, outputs: list) -> str | None:
    """What makes a model's inputs/outputs unlike MODNet's (1xCxHxW in, C = 3, 4, or 3 + 1 split; 1x1xHxW out),
    or None. Checked when a model is opened, so a wrong model is named as such, not by a reshape error later."""
    if len(inputs) not in (1, 2) or not outputs:
        return f"it has {len(inputs)} input(s) and {len(outputs)} output(s); MODNet has 1 (or image + prev_alpha) and 1"
    if any(len(s) != 4 for s in inputs):
        return f"input shapes {inputs}; MODNet takes 1xCxHxW"
    channels = [s[1] for s in inputs]
    if not all(isinstance(c, int) for c in channels) or (
            channels not in ([3], [4], [3, 1])):
        return f"input channels {channels}; MODNet takes 3, 4 (with the previous alpha), or 3 and 1"
    out = outputs[0]
    if len(out) != 4 or (isinstance(out[1], int) and out[1] != 1):
        return f"first output has shape {out}; a matte is 1x1xHxW"
    return None


def open_backend(artifact: str | Path, threads: int = 2) -> Backend:
    """Checkpoint (.pt/.pth/.ckpt/.safetensors) -> torch; .onnx -> onnxruntime; .prototxt -> pycaffe."""
    path = Path(artifact)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return OnnxBackend(path, threads)
    if suffix == ".prototxt":
        from .export.caffe.runner import CaffeBackend

        return CaffeBackend(path)
    if suffix in (".om",):
        raise MatteconvError(f"{path}: .om models run only on an Ascend device (use `matteconv verify --om`)")
    from .model.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    return TorchBackend(load_checkpoint(path).model)

"""Stages: each turns a model-size uint8 frame (+ previous alpha) into an alpha, one per artifact.
Adding a format is one builder here; a stage that cannot run carries its reason and is reported as skipped."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..backends import Backend, OnnxBackend, TorchBackend
from ..errors import MatteconvError
from .golden import GoldenSet, model_input

RunFn = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


@dataclass
class Stage:
    name: str
    artifact: str
    run: RunFn | None = None
    skip: str | None = None  # why it cannot run here
    error: str | None = None  # why it failed before producing numbers (wrong checkpoint, broken file)
    # An extra comparison shown beside the stage (for aipp: the YUV round trip through the reference path).
    baseline: RunFn | None = None
    baseline_label: str = ""
    # For stages judged on their model input rather than the alpha (aipp): frame -> (max, mean) difference.
    input_check: Callable[[np.ndarray], dict[str, float]] | None = None
    # Which tolerance of the golden set judges it (default: its name); the fp16 stages share "fp16".
    tolerance_key: str | None = None
    label: str | None = None  # how the report names it (default: its name)
    # For stages judged against a prediction (om): the predicted .om (fp16 emulator) on the same input. The
    # stage passes when its error is within PREDICTED_FACTOR x the prediction's error + a floor (run.py).
    predict: RunFn | None = None


def backend_stage(name: str, artifact: str, backend: Backend) -> Stage:
    def run(frame, prev):
        return backend.run(model_input(frame, prev))[0, 0]

    return Stage(name, artifact, run)


def check_size(backend: Backend, gset: GoldenSet, where: str) -> str | None:
    if backend.size is not None and tuple(backend.size) != gset.size:
        h, w = backend.size
        return (f"{where}: model input is {h}x{w}, golden set is {gset.size[0]}x{gset.size[1]} "
                f"(make one at this size: matteconv golden make --ckpt CKPT --size {h}x{w} -o DIR)")
    if backend.in_channels != gset.in_channels:
        return f"{where}: model takes {backend.in_channels} channels, golden set has {gset.in_channels}"
    return None


def torch_stage(model) -> Stage:
    return backend_stage("torch", "PyTorch fp32", TorchBackend(model))


def onnx_stage(path: str | Path, gset: GoldenSet) -> Stage:
    try:
        backend = OnnxBackend(path)
    except MatteconvError as e:
        return Stage("onnx", str(path), error=str(e))
    made_from = backend.metadata.get("weights_sha256")
    want = gset.manifest["checkpoint"]["weights_sha256"]
    if made_from and made_from != want:
        return Stage("onnx", str(path), error=f"{path}: exported from other weights ({made_from[:12]}) than the "
                                               f"golden set's ({want[:12]})")
    problem = check_size(backend, gset, str(path))
    if problem:
        return Stage("onnx", str(path), error=problem)
    return backend_stage("onnx", str(path), backend)


def caffe_stage(path: str | Path, gset: GoldenSet) -> Stage:
    try:
        import caffe  # noqa: F401
    except ImportError:
        return Stage("caffe", str(path), skip="pycaffe is not installed (scripts/install-caffe.sh)")
    from ..backends import open_backend

    try:
        backend = open_backend(path)
    except MatteconvError as e:
        return Stage("caffe", str(path), error=str(e))
    problem = check_size(backend, gset, str(path))
    if problem:
        return Stage("caffe", str(path), error=problem)
    return backend_stage("caffe", str(path), backend)

"""The INT8 stage ("predicted INT8 .om"): the ONNX artifact (int8-onnx, onnxruntime) or the Caffe export
(int8-caffe, pycaffe) under the INT8 device model of matteconv.int8, with a quantization record (given, or
calibrated here on the golden inputs with AMCT's defaults), judged against the float64 golden with the `int8`
tolerance. Other artifacts have no INT8 emulator: their stage says so (skipped).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import MatteconvError
from .golden import GoldenSet
from .stages import Stage, backend_stage

INT8_KEY = "int8"


def int8_stage(parent: Stage, gset: GoldenSet, record_path: Path | None = None) -> Stage:
    name, label = f"int8-{parent.name}", f"predicted INT8 .om ({parent.name})"
    if parent.skip or parent.error:
        return Stage(name, parent.artifact, skip=parent.skip, error=parent.error, tolerance_key=INT8_KEY, label=label)
    if parent.name not in ("onnx", "caffe"):
        return Stage(name, parent.artifact, skip="the INT8 device model runs ONNX models and Caffe exports",
                     tolerance_key=INT8_KEY, label=label)
    try:
        record = load_or_calibrate(Path(parent.artifact), gset, record_path)
        from ..int8.emulate import open_int8_backend

        backend = open_int8_backend(parent.artifact, record)
    except MatteconvError as e:
        return Stage(name, parent.artifact, error=str(e), tolerance_key=INT8_KEY, label=label)
    stage = backend_stage(name, parent.artifact, backend)
    stage.tolerance_key, stage.label = INT8_KEY, label
    return stage


def load_or_calibrate(model: Path, gset: GoldenSet, record_path: Path | None):
    """The record `quantize` wrote for this model (checked by sha256), or IFMR/ARQ with AMCT's defaults on the
    golden inputs."""
    from ..fileio import sha256_file
    from ..int8.quantize import calibrate, golden_inputs
    from ..int8.record import load_record

    if record_path is None:
        return calibrate(model, golden_inputs(gset.root))
    try:
        record = load_record(record_path)
    except (UnicodeDecodeError, ValueError) as e:  # a binary or malformed file: name it and say what it should be
        raise MatteconvError(f"{record_path}: not a matteconv quantization record (the JSON file `matteconv "
                             f"quantize` writes; {type(e).__name__})") from None
    if record.model_sha256 != sha256_file(model):
        raise MatteconvError(f"{record_path}: made for another model ({record.model}), not {model}")
    return record


def with_int8_stages(stages: list[Stage], gset: GoldenSet, record_path: Path | None = None) -> list[Stage]:
    """Each onnx/caffe stage followed by its INT8 twin (after its fp16 twin, if any); other stages unchanged."""
    out = []
    for s in stages:
        out.append(s)
        if s.name in ("onnx", "caffe") or s.name in ("fp16-onnx", "fp16-caffe"):
            base = s.name.removeprefix("fp16-")
            parent = next(p for p in stages if p.name == base)
            has_fp16_twin = any(p.name == f"fp16-{base}" for p in stages)
            if s.name.startswith("fp16-") or not has_fp16_twin:
                out.append(int8_stage(parent, gset, record_path))
    return out

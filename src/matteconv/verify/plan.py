"""Which stages a verify run has: torch always (it is the noise floor), one per artifact given."""
from __future__ import annotations

from pathlib import Path

from .golden import GoldenSet, golden_model
from .stages import Stage, caffe_stage, onnx_stage, torch_stage


def plan_stages(gset: GoldenSet, ckpt: Path | None = None, onnx: Path | None = None, caffe: Path | None = None,
                aipp: Path | None = None, om: Path | None = None, required=(), fp16: bool = False) -> list[Stage]:
    """`fp16`: after each torch/onnx/caffe stage, its "predicted .om" twin (verify/fp16_stages.py)."""
    model, _ = golden_model(gset, ckpt)
    stages = [torch_stage(model)]
    if onnx is not None:
        stages.append(onnx_stage(onnx, gset))
    elif "onnx" in required:
        stages.append(Stage("onnx", "-", skip="no --onnx model given"))
    if caffe is not None:
        stages.append(caffe_stage(caffe, gset))
    elif "caffe" in required:
        stages.append(Stage("caffe", "-", skip="no --caffe model given"))
    if fp16:
        from .fp16_stages import with_fp16_stages

        stages = with_fp16_stages(stages, model)
    if aipp is not None or "aipp" in required:
        from .ascend_stages import aipp_stage

        stages.append(aipp_stage(aipp, onnx, gset))
    if om is not None or "om" in required:
        from .ascend_stages import om_stage

        stages.append(om_stage(om, gset))
    return stages

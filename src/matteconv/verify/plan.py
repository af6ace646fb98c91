"""Which stages a verify run has: torch always (it is the noise floor), one per artifact given."""
from __future__ import annotations

from pathlib import Path

from .golden import GoldenSet, golden_model
from .stages import Stage, caffe_stage, onnx_stage, torch_stage

PRECISIONS = ("fp16", "int8")  # device models with a "predicted .om" stage per artifact


def plan_stages(gset: GoldenSet, ckpt: Path | None = None, onnx: Path | None = None, caffe: Path | None = None,
                aipp: Path | None = None, om: Path | None = None, required=(), fp16: bool = False,
                precisions: tuple[str, ...] = (), quant_record: Path | None = None) -> list[Stage]:
    """`precisions` ("fp16", "int8"; `fp16=True` is "fp16"): after each artifact's stage, its "predicted .om"
    twin under that device model (verify/fp16_stages.py, verify/int8_stages.py; `quant_record` for int8)."""
    precisions = tuple(precisions) + (("fp16",) if fp16 and "fp16" not in precisions else ())
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {unknown[0]!r} (choose from {', '.join(PRECISIONS)})")
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
    if "fp16" in precisions:
        from .fp16_stages import with_fp16_stages

        stages = with_fp16_stages(stages, model)
    if "int8" in precisions:
        from .int8_stages import with_int8_stages

        stages = with_int8_stages(stages, gset, quant_record)
    if aipp is not None or "aipp" in required:
        from .ascend_stages import aipp_stage

        stages.append(aipp_stage(aipp, onnx, gset))
    if om is not None or "om" in required:
        from .ascend_stages import om_stage

        stages.append(om_stage(om, gset))
    return stages

"""The fp16 stages ("predicted .om"): each artifact verify runs (checkpoint, ONNX, Caffe) again under the device
model of matteconv.fp16, judged against the float64 golden with the `fp16` tolerance. A stage whose artifact
could not run (skipped, wrong file) passes that reason on instead of running."""
from __future__ import annotations

from ..errors import MatteconvError
from .stages import Stage, backend_stage

FP16_KEY = "fp16"


def fp16_stage(parent: Stage, model=None) -> Stage:
    """The fp16 twin of a torch, onnx or caffe stage (`model`: the checkpoint's module, for torch)."""
    name, label = f"fp16-{parent.name}", f"predicted .om ({parent.name})"
    if parent.skip or parent.error:
        return Stage(name, parent.artifact, skip=parent.skip, error=parent.error, tolerance_key=FP16_KEY,
                     label=label)
    if parent.name == "onnx":
        import onnx

        from ..export.onnx.passes import exported_runtime

        runtime = exported_runtime(onnx.load(str(parent.artifact), load_external_data=False))
        if runtime != "any":
            return Stage(name, parent.artifact, skip=f"exported with --runtime {runtime}, which atc does not take: "
                         "no .om to predict (export with --runtime any)", tolerance_key=FP16_KEY, label=label)
    try:
        if parent.name == "torch":
            from ..fp16.torch_emu import Fp16TorchBackend

            backend = Fp16TorchBackend(model)
        else:
            from ..fp16 import open_fp16_backend

            backend = open_fp16_backend(parent.artifact)
    except MatteconvError as e:
        return Stage(name, parent.artifact, error=str(e), tolerance_key=FP16_KEY, label=label)
    stage = backend_stage(name, parent.artifact, backend)
    stage.tolerance_key, stage.label = FP16_KEY, label
    return stage


def with_fp16_stages(stages: list[Stage], model) -> list[Stage]:
    """Each torch/onnx/caffe stage followed by its fp16 twin; other stages unchanged."""
    out = []
    for s in stages:
        out.append(s)
        if s.name in ("torch", "onnx", "caffe"):
            out.append(fp16_stage(s, model))
    return out

"""Which layers AMCT quantizes to INT8 for Ascend 310, and the INT8 device model, as data.

Why: post-training quantization (AMCT, then atc) changes some layers to INT8 and leaves the rest in fp16; the
prediction must know exactly which, with the rule that decides it. Sources (keys used in the tables below):
- [LAYERS] AMCT, "Layers That Support Quantization and Restrictions" (CANN 8.0):
           https://www.hiascend.com/document/detail/en/canncommercial/800/devaids/aoe/aoepar_16_076.html
- [CFG]    AMCT, "Simplified PTQ Configuration File" (calibration_config_onnx.proto / _caffe.proto):
           https://www.hiascend.com/document/detail/en/canncommercial/800/devaids/amct/atlasamct_16_0163.html
- [IFMR]   AMCT, "IFMR algorithm" (activation calibration):
           https://www.hiascend.com/document/detail/en/canncommercial/800/devaids/amct/atlasamct_16_0389.html
- [ARQ]    AMCT, "ARQ algorithm" (weight calibration; InnerProduct is channel-irrelevant: channel_wise must be false):
           https://www.hiascend.com/document/detail/en/canncommercial/800/devaids/amct/atlasamct_16_0387.html
- [QUANT]  CANN operator AscendQuant: y = round(x * scale + offset) to int8, round_mode "Round" by default
           (scale = 1/scale_d); aclnnAscendQuant: https://www.hiascend.com/document/detail/zh/canncommercial/80RC2/
           apiref/appdevgapi/context/aclnnAscendQuant.md; ONNX page atlasoxol_09_0015.
- [ROUND]  CANN Round: nearest, ties to even (cann/ops-math math/round/op_api/aclnn_round.h).
- [DEPLOY] docs/design.md section 9: the deploy model (what atc compiles) has the bias as round(bias/(scale_d*scale_w))
           in INT32; the fake-quant model computes in fp32 and can differ from it.
- [CONVERT] AMCT Caffe convert_model: "Deconvolution: group 1, dilation 1, 4-D filter" is quantized; the deploy model
           has Quant / DeQuant (AntiQuant) layers around each quantized layer and compiles with atc:
           https://hiascend.com/document/detail/zh/CANNCommunityEdition/80RC3alpha002/devaids/auxiliarydevtool/
           atlasamctcaffe_16_0067.html
- [PM]     the fp16 device model (matteconv.fp16.device) for everything that is not quantized.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MatteconvError
from ..fp16.device import DeviceRule

INT8_MIN, INT8_MAX = -128, 127
WEIGHT_MAX = 127  # symmetric weights: scale = max|w| / 127, so the grid is [-127, 127] (ARQ)

LAYERS_URL = "https://www.hiascend.com/document/detail/en/canncommercial/800/devaids/aoe/aoepar_16_076.html"


@dataclass(frozen=True)
class QuantRule:
    framework: str  # onnx | caffe
    op: str  # ONNX op type / Caffe layer type
    quantized: str  # what AMCT does with it
    restriction: str
    emulated: bool  # whether matteconv's INT8 device model computes it quantized
    channel_wise: bool  # ARQ per output channel (False: one weight scale per layer)
    source: str = "[LAYERS]"


QUANT_RULES: tuple[QuantRule, ...] = (
    QuantRule("onnx", "Conv", "weights + activations", "4-D filter (5-D needs dilation_d 1); weight a constant",
              True, True),
    QuantRule("onnx", "ConvTranspose", "weights + activations", "dilation 1, 4-D filter; weight a constant",
              True, True),
    QuantRule("onnx", "Gemm", "weights + activations", "transA = 0; weight a constant", True, False,
              "[LAYERS]; [ARQ] (a fully connected layer is channel-irrelevant: one weight scale)"),
    QuantRule("onnx", "MatMul", "weights + activations", "second input a 2-D constant", True, False,
              "[LAYERS]; [ARQ] (a fully connected layer is channel-irrelevant: one weight scale)"),
    QuantRule("onnx", "AveragePool", "activations (tensor quantization)", "not emulated: matteconv skips it", False,
              False),
    QuantRule("caffe", "Convolution", "weights + activations", "4-D filter", True, True),
    QuantRule("caffe", "Deconvolution", "weights + activations", "group 1, dilation 1, 4-D filter", True, True,
              "[LAYERS]; [CONVERT] (group 1)"),
    QuantRule("caffe", "InnerProduct", "weights + activations", "transpose false, axis 1", True, False,
              "[LAYERS]; [ARQ] (InnerProduct with channel_wise true is an error)"),
    QuantRule("caffe", "Pooling", "AVE: weights + activations; MAX: activations",
              "not emulated: matteconv skips it", False, False),
    QuantRule("caffe", "Eltwise", "activations only (tensor quantization)", "not emulated: matteconv skips it",
              False, False),
)

DEVICE_MODEL_INT8: tuple[DeviceRule, ...] = (
    DeviceRule("quantized layer input (activation)",
               "q = clip(round_half_even(x / scale_d) + offset, -128, 127), per tensor; offset 0 without "
               "activation_offset",
               "[QUANT] (AscendQuant, scale = 1/scale_d); [ROUND]; [CFG] activation_offset",
               "the chip multiplies the fp16 input by 1/scale_d in fp16: a value within an fp16 ulp of a rounding "
               "boundary may land one step apart"),
    DeviceRule("quantized layer weights",
               "w_q = clip(round(w / scale_w), -127, 127), scale_w = max|w| / 127 per output channel "
               "(one per layer for Gemm/MatMul/InnerProduct)", "[ARQ]; [LAYERS]", "-"),
    DeviceRule("quantized layer arithmetic",
               "sum (q - offset) * w_q + round(bias / (scale_d * scale_w)) in INT32, then * scale_d * scale_w "
               "-> fp16 (AscendDequant)",
               "[DEPLOY]; the offset's correction is folded into the INT32 bias, padding uses the offset",
               "computed in float32 on the host: exact while |sum| < 2^24 (fp32-level beyond)"),
    DeviceRule("every other layer (not quantized, or skipped)", "the fp16 device model", "[PM]",
               "as matteconv.fp16"),
)


@dataclass
class Layer:
    """One layer AMCT may quantize. `macs`: multiply-accumulates per inference (0 when shapes are unknown)."""

    name: str
    op: str
    weight: str | None = None  # ONNX initializer / Caffe layer holding the weights
    bias: str | None = None
    axis: int = 0  # output-channel axis of the weight
    channel_wise: bool = True
    macs: int = 0
    skip: str | None = None  # why it stays fp16 (None: quantized)
    input: str = ""  # the activation tensor / blob it reads


@dataclass
class LayerPlan:
    framework: str
    path: Path
    layers: list[Layer] = field(default_factory=list)
    total_macs: int = 0  # every conv/matmul MAC of the model (quantizable or not)


def rule_for(framework: str, op: str) -> QuantRule | None:
    return next((r for r in QUANT_RULES if r.framework == framework and r.op == op), None)


def _onnx_plan(path: Path) -> LayerPlan:
    import onnx
    from onnx import helper

    from ..ascend.ops import onnx_ops

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    ops = {op.name: op for op in onnx_ops(path).ops}
    plan = LayerPlan("onnx", path)
    for node in model.graph.node:
        rule = rule_for("onnx", node.op_type)
        if rule is None:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        op = ops.get(node.name)
        w = inits.get(node.input[1]) if len(node.input) > 1 else None
        layer = Layer(node.name, node.op_type, w.name if w is not None else None,
                      node.input[2] if len(node.input) > 2 and node.input[2] in inits else None,
                      channel_wise=rule.channel_wise, input=node.input[0])
        layer.macs = _macs(node.op_type, w, op, attrs)
        plan.total_macs += layer.macs
        if not rule.emulated:
            layer.skip = f"{node.op_type}: {rule.restriction}"
        elif w is None:
            layer.skip = f"{node.op_type}: weight is not a constant ({rule.source})"
        elif node.op_type in ("Conv", "ConvTranspose") and len(w.dims) != 4:
            layer.skip = f"{node.op_type}: {len(w.dims)}-D filter, 4-D supported here ({rule.source})"
        elif node.op_type == "ConvTranspose" and any(d != 1 for d in attrs.get("dilations", [1, 1])):
            layer.skip = f"ConvTranspose: dilation {attrs['dilations']} (AMCT requires 1, {rule.source})"
        elif node.op_type == "Gemm" and attrs.get("transA", 0):
            layer.skip = f"Gemm: transA = 1 (AMCT requires 0, {rule.source})"
        elif node.op_type == "MatMul" and len(w.dims) != 2:
            layer.skip = f"MatMul: second input is {len(w.dims)}-D (AMCT requires a 2-D constant, {rule.source})"
        if node.op_type == "ConvTranspose" or (node.op_type == "MatMul") or \
                (node.op_type == "Gemm" and not attrs.get("transB", 0)):
            layer.axis = 1
        plan.layers.append(layer)
    return plan


def _macs(op_type: str, w, op, attrs: dict) -> int:
    if w is None:
        return 0
    dims = [int(d) for d in w.dims]
    if op_type == "Conv" and op is not None and op.out_shape:
        return int(np.prod(op.out_shape)) * int(np.prod(dims[1:]))
    if op_type == "ConvTranspose" and op is not None and op.in_shape:
        return int(np.prod(op.in_shape)) * int(np.prod(dims[1:]))
    if op_type in ("Gemm", "MatMul") and op is not None and op.out_shape:
        k = dims[1] if (op_type == "Gemm" and attrs.get("transB", 0)) else dims[0]
        return int(np.prod(op.out_shape)) * k
    return 0


def _caffe_plan(path: Path) -> LayerPlan:
    from ..ascend.ops import caffe_ops

    plan = LayerPlan("caffe", path)
    for op in caffe_ops(path).ops:
        rule = rule_for("caffe", op.type)
        if rule is None:
            continue
        layer = Layer(op.name, op.type, op.name, op.name, channel_wise=rule.channel_wise,
                      input=op.bottoms[0] if op.bottoms else "")
        if op.type == "Convolution" and op.out_shape and op.in_shape and op.kernel:
            layer.macs = int(np.prod(op.out_shape)) * (op.in_shape[1] // op.group) * op.kernel[0] * op.kernel[1]
        elif op.type == "Deconvolution" and op.out_shape and op.in_shape and op.kernel:
            layer.macs = int(np.prod(op.in_shape)) * (op.out_shape[1] // op.group) * op.kernel[0] * op.kernel[1]
        elif op.type == "InnerProduct" and op.in_shape and op.out_shape:
            layer.macs = int(np.prod(op.in_shape)) * int(np.prod(op.out_shape[1:]))
        if op.type == "Deconvolution":
            layer.axis = 1
        plan.total_macs += layer.macs
        if not rule.emulated:
            layer.skip = f"{op.type}: {rule.restriction}"
        elif op.type == "Deconvolution" and op.group != 1:
            layer.skip = f"Deconvolution: group {op.group} (AMCT requires 1, {rule.source})"
        plan.layers.append(layer)
    return plan


def plan_layers(model: str | Path) -> LayerPlan:
    """Every layer of an ONNX model or Caffe prototxt that AMCT's table lists, with why it stays fp16 (if it does)
    and its MACs. Raises MatteconvError for other files."""
    path = Path(model)
    if not path.is_file():
        raise MatteconvError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _onnx_plan(path)
    if suffix == ".prototxt":
        return _caffe_plan(path)
    raise MatteconvError(f"{path}: quantize takes an ONNX model (.onnx) or a Caffe `ascend` export (.prototxt)")


def rule_rows() -> list[tuple[str, str, str, str, str]]:
    return [(r.framework, r.op, r.quantized, r.restriction, r.source) for r in QUANT_RULES]

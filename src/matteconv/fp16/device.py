"""The model of the Ascend 310 device under atc's default `--precision_mode=force_fp16`, as data.

Why: every host stage checks fp32, but the chip does not compute in fp32. The emulators in this package (torch,
ONNX, Caffe) all apply this one table, so a model that is exact in fp32 and breaks in fp16 fails on the host.
Source keys are those of shared/reference/ascend-operator-rules.md:
- [PM]   ATC --precision_mode (default force_fp16; force_fp32 keeps fp16-only kernels in fp16):
         https://www.hiascend.com/document/detail/zh/canncommercial/900/devaids/atctool/atlasatcparam_16_0068.html
- [AIPP] AIPP normalisation, output fp16:
         https://www.hiascend.com/document/detail/en/canncommercial/800/devaids/atc/atlasatc_16_0022.html
- [M]    CANN built-in kernels, canndev mirror at 7d77ce32d: ops/built-in/tbe/impl/{conv2d,conv2d_backprop_input_d,
         batch_matmul,instance_norm,mvn,reduction,power}.py
- [INFO] the same mirror, op_info_cfg/ai_core/ascend310/aic-ascend310-ops-info.ini (dtypes per kernel on 310)
- [P/n]  CANN 8.0 operator pages .../canncommercial/800/apiref/aolapi/operatorlist_00NNN.html
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

FP16_MAX = 65504.0  # largest finite float16
FP16_MIN_NORMAL = 6.103515625e-05  # below this float16 loses precision (subnormal), below 6e-8 it is 0


@dataclass(frozen=True)
class DeviceRule:
    ops: str  # the ops this row covers (Caffe / ONNX / torch names)
    emulated: str  # how the host computes it
    source: str
    limits: str


DEVICE_MODEL: tuple[DeviceRule, ...] = (
    DeviceRule("model input (AIPP output, or a plain input cast by force_fp16)",
               "rounded to fp16", "[AIPP]; [PM]",
               "a plain fp32 input may be cast on the chip or by the runtime: same values"),
    DeviceRule("weights and biases", "rounded to fp16 once", "[PM] force_fp16",
               "BatchNorm is folded into the conv before rounding (as ONNX export, the Caffe lowering and atc's "
               "fusion do); atc may fold other constants first"),
    DeviceRule("Conv / Convolution, ConvTranspose / Deconvolution, MatMul / InnerProduct / Linear",
               "fp16 inputs and weights, products summed in fp32, output rounded to fp16",
               "[M] conv2d.py, conv2d_backprop_input_d.py, batch_matmul.py (Cube: fp16 in, fp32 accumulate); "
               "[INFO] float16 only on Ascend310",
               "summation order differs from the host's (fp32-level differences); bias added in fp32"),
    DeviceRule("InstanceNormalization / InstanceNorm2d, MVN, Reduction (MEAN)",
               "computed in fp32 from fp16 inputs, output rounded to fp16",
               "[M] instance_norm.py, mvn.py, reduction.py (cast to fp32 inside); [P/00130], [P/00144]",
               "mvn.py computes in fp32 only where the chip has fp32 vector multiply (310 does); no overflow or "
               "underflow can happen inside these ops in the model"),
    DeviceRule("Power", "fp16 arithmetic (numpy float16): (shift + scale*x) ** power, each step rounded",
               "[INFO] Power lists float16 only for Ascend310; [M] power.py rejects float32 on Ascend310; [P/00137]",
               "numpy rounds x**p correctly; the chip computes non-integer powers through exp/log in fp16 "
               "(a few ulp more); overflow to inf above 65504 is modelled exactly"),
    DeviceRule("every other op (ReLU, ReLU6/Clip, Sigmoid, Add/Mul/Eltwise, Scale, Pooling/GlobalAveragePool, "
               "Resize/bilinear, Concat, Slice)",
               "computed in fp32 from fp16 inputs, output rounded to fp16 (one correctly rounded fp16 op)",
               "[INFO] fp16 kernels on Ascend310",
               "kernels that accumulate in fp16 inside one op (average pooling over many pixels, sigmoid via "
               "exp) can differ by a few ulp; in the torch emulator, ops between modules (interpolate, cat, the "
               "residual add, SE's multiply) are rounded where their result enters the next module"),
    DeviceRule("layers atc keeps in fp32 (--keep_dtype; `om --keep-fp32`), torch emulator only",
               "fp32 parameters, inputs and output, computed in fp32; convolutions stay as above",
               "[PM] keep_dtype; [INFO] Conv2D / Conv2DBackpropInput / MatMul list float16 only for Ascend310",
               "the ONNX and Caffe emulators do not model --keep_dtype; a kept layer still reads the fp16 output "
               "of a layer before it that is not kept"),
    DeviceRule("model output", "rounded to fp16", "docs/design.md section 8: outputs keep the last layer's dtype",
               "unless atc is given --output_type FP32 (same values: the last layer computed in fp16)"),
)


def round16(x: np.ndarray) -> np.ndarray:
    """float32 values on the float16 grid (round to nearest even; beyond 65504 -> inf), as float32."""
    with np.errstate(over="ignore"):
        return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)


def round16_t(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float16).to(x.dtype)


def table_rows() -> list[tuple[str, str, str, str]]:
    return [(r.ops, r.emulated, r.source, r.limits) for r in DEVICE_MODEL]

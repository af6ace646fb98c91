"""The INT8 device model (rules.DEVICE_MODEL_INT8) applied to an ONNX model, in onnxruntime: the predicted INT8 .om.

Built on the fp16 emulator (fp16.onnx_emu.fp16_model: every value rounded to fp16 where it is made), then, for
each layer the quantization record keeps INT8:
- its input goes through QuantizeLinear(scale_d, offset) -> DequantizeLinear: clip(round_half_even(x / scale_d)
  + offset, -128, 127), then (q - offset) * scale_d (onnxruntime rounds half to even, as CANN's Round);
- its weight is replaced by w_q * scale_w (w_q the ARQ INT8 weight), not rounded to fp16;
- its bias by round(bias / (scale_d * scale_w)) * scale_d * scale_w: the deploy model's INT32 bias;
so the layer computes scale_d * scale_w * (sum (q - offset) * w_q + b_q) in float32, which is the INT32
accumulation dequantised (exact while the integer sum stays below 2^24), and its output is rounded to fp16 by the
fp16 model's Cast pair (AscendDequant writes fp16). Every other layer is the fp16 device model.

The fake-quant model AMCT writes differs in two ways: it computes in fp32 throughout (no fp16 between layers) and
keeps its bias dequantised in fp32; this emulator follows the deploy model, which is what the board runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..backends import OnnxBackend, ort_session
from ..fp16.device import round16
from ..fp16.onnx_emu import fp16_model
from .calibrate import quantize_weight
from .record import QuantRecord

TAG = "__int8"


def _shape_for(scales: np.ndarray, ndim: int, axis: int) -> list[int]:
    shape = [1] * ndim
    if scales.size > 1:
        shape[axis] = scales.size
    return shape


SWITCH = "int8::"  # prefix of the switch inputs of a switchable model


def deploy_params(w: np.ndarray, b: np.ndarray | None, r) -> tuple[np.ndarray, np.ndarray | None]:
    """What a quantized layer computes with, as float32 (rules.DEVICE_MODEL_INT8, [ARQ], [DEPLOY]): the weight
    w_q * scale_w (w_q the ARQ INT8 weight, per output channel on axis r.axis) and the bias as the deploy model's
    INT32 round(b / (scale_d * scale_w)) times scale_d * scale_w. `r` is the layer's LayerRecord. For a grouped
    layer whose weight's output axis holds C_out / group channels (Caffe Deconvolution), the bias's C_out channels
    take the scales group by group (channel g * C_out / group + j uses scale j)."""
    w = np.asarray(w, np.float64)
    sw = np.asarray(r.weight_scales, np.float64)
    wd = (quantize_weight(w, sw, r.axis) * sw.reshape(_shape_for(sw, w.ndim, r.axis))).astype(np.float32)
    if b is None:
        return wd, None
    b = np.asarray(b, np.float64).reshape(-1)
    per = np.tile(sw, b.size // sw.size) if sw.size > 1 and b.size % sw.size == 0 else np.full(b.size, sw[0])
    step = r.act_scale * per
    return wd, (np.rint(b / step) * step).astype(np.float32)


def int8_model(model: onnx.ModelProto, record: QuantRecord, switchable: bool = False) -> onnx.ModelProto:
    """A copy of `model` computing as the INT8 .om would (module doc); `record` must come from this model.
    `switchable`: each INT8 layer is computed both ways and a scalar bool input `int8::<layer>` picks which
    (Where) before the fp16 rounding of its output: one session serves every choice of skipped layers (the
    automatic skip and `compare --precision int8`), at about twice the cost of a run."""
    original = {i.name: i for i in model.graph.initializer}
    m = fp16_model(model)
    g = m.graph
    quant = {r.name: r for r in record.quantized}
    found = {n.name for n in g.node if n.name in quant}
    missing = sorted(set(quant) - found)
    if missing:
        from ..errors import MatteconvError

        raise MatteconvError(f"quantization record names layers the model does not have: {', '.join(missing[:3])}"
                             f"{' ...' if len(missing) > 3 else ''} (made from {record.model})")
    nodes, inits = [], []
    for node in g.node:
        r = quant.get(node.name)
        if r is None:
            nodes.append(node)
            continue
        tag = node.name + TAG
        x_in = node.input[0]
        inits += [numpy_helper.from_array(np.array(r.act_scale, np.float32), tag + "_sd"),
                  numpy_helper.from_array(np.array(r.act_offset, np.int8), tag + "_zp")]
        nodes += [helper.make_node("QuantizeLinear", [x_in, tag + "_sd", tag + "_zp"], [tag + "_q"], name=tag + "_q"),
                  helper.make_node("DequantizeLinear", [tag + "_q", tag + "_sd", tag + "_zp"], [tag + "_x"],
                                   name=tag + "_dq")]
        has_bias = len(node.input) > 2 and node.input[2] in original
        wd, bd = deploy_params(numpy_helper.to_array(original[node.input[1]]),
                               numpy_helper.to_array(original[node.input[2]]) if has_bias else None, r)
        inits.append(numpy_helper.from_array(wd, tag + "_w"))
        qnode = onnx.NodeProto()
        qnode.CopyFrom(node)
        qnode.input[0], qnode.input[1] = tag + "_x", tag + "_w"
        if has_bias:
            inits.append(numpy_helper.from_array(bd, tag + "_b"))
            qnode.input[2] = tag + "_b"
        if not switchable:
            nodes.append(qnode)
            continue
        out = node.output[0]
        qnode.name, qnode.output[0], node.output[0] = tag, tag + "_y", tag + "_f"
        g.input.append(helper.make_tensor_value_info(SWITCH + r.name, onnx.TensorProto.BOOL, []))
        nodes += [node, qnode, helper.make_node("Where", [SWITCH + r.name, tag + "_y", tag + "_f"], [out],
                                                name=tag + "_where")]
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(inits)
    # DequantizeLinear/QuantizeLinear need opset >= 10; the exports are 11..17
    return m


class SwitchableInt8(OnnxBackend):
    """The switchable INT8 emulator (int8_model(switchable=True)): run(x, int8) with `int8` the set of layers
    computed in INT8 (the others in fp16)."""

    name = "onnx-int8-switchable"

    def __init__(self, path: str | Path, record: QuantRecord, threads: int = 2):
        super().__init__(path, threads)
        self.record = record
        self.layers = [r.name for r in record.quantized]
        model = int8_model(onnx.load(str(self.path)), record, switchable=True)
        self.session = ort_session(model.SerializeToString(), threads, f"{self.path} (INT8 emulation)")
        self.input_names = [i.name for i in self.session.get_inputs() if not i.name.startswith(SWITCH)]

    def run(self, x: np.ndarray, int8: set[str] | None = None) -> np.ndarray:
        x = np.ascontiguousarray(round16(x), dtype=np.float32)
        feeds = ({self.input_names[0]: x[:, :3], self.input_names[1]: x[:, 3:4]} if len(self.input_names) == 2
                 else {self.input_names[0]: x})
        on = set(self.layers) if int8 is None else set(int8)
        feeds.update({SWITCH + n: np.array(n in on) for n in self.layers})
        return self.session.run(None, feeds)[0]


class Int8OnnxBackend(OnnxBackend):
    """Backend protocol: an ONNX file under the INT8 device model with a quantization record (the predicted INT8
    .om of an ONNX artifact)."""

    name = "onnx-int8"

    def __init__(self, path: str | Path, record: QuantRecord, threads: int = 2):
        super().__init__(path, threads)
        self.record = record
        model = int8_model(onnx.load(str(self.path)), record)
        self.session = ort_session(model.SerializeToString(), threads, f"{self.path} (INT8 emulation)")

    def run(self, x: np.ndarray) -> np.ndarray:
        return super().run(round16(x))


def open_int8_backend(artifact: str | Path, record: QuantRecord, threads: int = 2):
    """.onnx -> the onnxruntime INT8 emulator; .prototxt -> the pycaffe one (caffe_emu.py). Others: MatteconvError."""
    path = Path(artifact)
    if path.suffix.lower() == ".onnx":
        return Int8OnnxBackend(path, record, threads)
    if path.suffix.lower() == ".prototxt":
        from .caffe_emu import Int8CaffeBackend

        return Int8CaffeBackend(path, record)
    from ..errors import MatteconvError

    raise MatteconvError(f"{path}: the INT8 device model runs ONNX models (.onnx) and Caffe exports (.prototxt)")

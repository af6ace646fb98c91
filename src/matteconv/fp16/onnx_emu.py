"""An ONNX model as the device runs it, in onnxruntime: float initializers on the fp16 grid, and a
Cast(float16) -> Cast(float) pair after every graph input and every node output, so each op computes in
float32 from fp16 values and its result is rounded to fp16 (device.DEVICE_MODEL).

Why not onnxconverter-common's float16 model: on CPU onnxruntime wraps Conv, Clip, Relu, InstanceNormalization,
MatMul and Resize in Casts back to fp32 and computes them there without rounding the results (measured), so it
is no emulator. onnxruntime keeps Cast pairs at every optimisation level (checked in tests).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..backends import OnnxBackend, ort_session
from .device import round16

SUFFIX = "__fp16"


def _round_initializers(graph: onnx.GraphProto) -> None:
    for i, init in enumerate(graph.initializer):
        if init.data_type == onnx.TensorProto.FLOAT:
            graph.initializer[i].CopyFrom(numpy_helper.from_array(round16(numpy_helper.to_array(init)), init.name))


def fp16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose every float value is rounded to fp16 where it is made (see module doc)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    _round_initializers(g)
    floats = _float_values(m)
    outputs = {o.name for o in g.output}
    renamed: dict[str, str] = {}  # value -> its rounded copy, for the nodes that read it
    nodes: list[onnx.NodeProto] = []

    def round_pair(src: str, dst: str) -> list[onnx.NodeProto]:
        return [helper.make_node("Cast", [src], [f"{dst}{SUFFIX}_h"], name=f"{dst}{SUFFIX}_h",
                                 to=onnx.TensorProto.FLOAT16),
                helper.make_node("Cast", [f"{dst}{SUFFIX}_h"], [dst], name=f"{dst}{SUFFIX}",
                                 to=onnx.TensorProto.FLOAT)]

    for inp in g.input:
        if inp.name in floats:
            renamed[inp.name] = inp.name + SUFFIX
            nodes += round_pair(inp.name, inp.name + SUFFIX)
    for node in g.node:
        node.input[:] = [renamed.get(i, i) for i in node.input]
        nodes.append(node)
        for k, o in enumerate(node.output):
            if not o or o not in floats:
                continue
            if o in outputs:  # a graph output keeps its name: the op writes a private one, the Cast the output
                node.output[k] = o + SUFFIX + "_raw"
                nodes += round_pair(node.output[k], o)
            else:
                renamed[o] = o + SUFFIX
                nodes += round_pair(o, o + SUFFIX)
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return m


def _float_values(model: onnx.ModelProto) -> set[str]:
    """Names of every float32 value (graph inputs and node outputs), by shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {vi.name for vi in infos if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


class Fp16OnnxBackend(OnnxBackend):
    """Backend protocol: an ONNX file under the device model (the `fp16` stage of an ONNX artifact)."""

    name = "onnx-fp16"

    def __init__(self, path: str | Path, threads: int = 2):
        super().__init__(path, threads)  # checks the file, reads inputs, size and metadata
        model = fp16_model(onnx.load(str(self.path)))
        self.session = ort_session(model.SerializeToString(), threads, f"{self.path} (fp16 emulation)")

    def run(self, x: np.ndarray) -> np.ndarray:
        return super().run(round16(x))

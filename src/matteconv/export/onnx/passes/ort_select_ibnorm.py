"""`ort-select-ibnorm` (`--runtime onnxruntime`): IBNorm's channel Slices as 1x1 selecting convolutions.

Why: onnxruntime's CPU provider runs Conv, pooling, Concat, Relu, same-shape Add/Mul and Resize (nearest, or
linear with `half_pixel`, `asymmetric` or `align_corners` and constant integer scales) in its blocked NCHWc
layout, and everything else in plain NCHW, with a reorder of the whole tensor at each crossing (onnxruntime
core/optimizer/nchwc_transformer.cc; checked on onnxruntime 1.32 by saving the optimised graph). MODNet's 16
IBNorms cross it several times each: a Slice per half, a BatchNormalization after a Slice, a Concat with a
plain-layout half. Each channel Slice of IBNorm becomes a 1x1 convolution that selects those channels
(`W[j, a + j] = 1`); the BatchNorm half's selector also carries the BatchNorm (scale and shift folded in float64).
A 1x1 convolution runs blocked; the Slices and the BatchNormalization are gone. Not for halves that only a
MatMul head reads (`ort-matmul-head`, which runs first): those run in NCHW either way. The InstanceNorm half is
recognised by the centred InstanceNorm's ops (`IN_HALF_READERS`), so it runs after `centre-instance-norm`.

Exactness: the selectors multiply by exactly 1 (or apply the folded BatchNorm scale and shift: fp32 rounding of
the fold only); export's parity check against PyTorch still judges the result. Not for atc: the device does not
need the selectors (`matteconv om` refuses a file exported for onnxruntime, ascend/command.py).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graph import GraphView, channel_slice, op_name, view_of
from .base import Pass
from .ort_matmul_head import read_only_by_heads

IN_HALF_READERS = ("ReduceMean", "Sub", "InstanceNormalization")  # the centred InstanceNorm (centre_instance_norm.py)


def select_ibnorm_halves(model: onnx.ModelProto, view: GraphView | None = None) -> int:
    """Rewrite, in place, every channel Slice read only by a BatchNormalization (IBNorm's BatchNorm half) into a
    1x1 Conv with the BatchNorm folded in, and every channel Slice read only by the centred InstanceNorm
    (ReduceMean / Sub / InstanceNormalization) into a 1x1 identity-selecting Conv; return how many Slices.

    Shapes: input N x C x H x W float32, output N x (e - a) x H x W; weights (e - a) x C x 1 x 1. The BatchNorm
    fold: s = gamma / sqrt(var + eps), b = beta - mean * s, in float64, stored as float32 (ONNX
    BatchNormalization's inference formula). Node names keep the replaced node's scope, and each Conv writes the
    tensor the replaced node wrote, so `compare` still finds IBNorm's halves."""
    view = view_of(model, view)
    graph = model.graph
    consts, readers = view.constants(), view.readers()
    outputs = {o.name for o in graph.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for sl in graph.node:
        if sl.op_type != "Slice" or sl.output[0] in outputs:
            continue
        rng = channel_slice(sl, consts, view.channels(sl.input[0]))
        users = readers.get(sl.output[0], [])
        if rng is None or not users or read_only_by_heads(sl.output[0], readers):
            continue
        (a, e), c = rng, view.channels(sl.input[0])
        w = np.zeros((e - a, c, 1, 1), np.float64)
        rows = np.arange(e - a)
        training = any(at.name == "training_mode" and at.i for at in users[0].attribute)  # batch statistics
        if len(users) == 1 and users[0].op_type == "BatchNormalization" and len(users[0].output) == 1 \
                and not training:
            bn = users[0]
            params = [consts.get(x) for x in bn.input[1:5]]
            if any(p is None or p.shape != (e - a,) for p in params):
                continue
            gamma, beta, mean, var = (p.astype(np.float64) for p in params)
            eps = next((at.f for at in bn.attribute if at.name == "epsilon"), 1e-5)
            scale = gamma / np.sqrt(var + np.float64(np.float32(eps)))
            w[rows, a + rows, 0, 0] = scale
            bias = beta - mean * scale
            name, out = f"{bn.name}_select", bn.output[0]
            dropped.add(id(bn))
        elif all(u.op_type in IN_HALF_READERS for u in users):
            w[rows, a + rows, 0, 0] = 1.0
            bias = None
            name, out = f"{sl.name}_select", sl.output[0]
        else:
            continue
        graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), f"{name}.weight"))
        ins = [sl.input[0], f"{name}.weight"]
        if bias is not None:
            graph.initializer.append(numpy_helper.from_array(bias.astype(np.float32), f"{name}.bias"))
            ins.append(f"{name}.bias")
        replaced[id(sl)] = [helper.make_node("Conv", ins, [out], name=op_name(name, "Conv"), kernel_shape=[1, 1])]
    if replaced:
        view.replace_nodes(replaced, dropped)
    return len(replaced)


PASS = Pass(name="ort-select-ibnorm", profiles=frozenset({"onnxruntime"}),
            apply=lambda model, ctx: select_ibnorm_halves(model, ctx.view),
            after=("centre-instance-norm", "ort-matmul-head"),
            exact="selectors multiply by exactly 1, or apply BatchNorm's scale and shift folded in float64")

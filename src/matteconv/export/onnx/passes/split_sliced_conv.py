"""`split-sliced-conv` (off by default): `Slice(Conv(x, W), channels a:b)` -> `Conv(x, W[a:b])`.

Why: every IBNorm after a convolution (16 in MODNet) slices the convolution's output into the BatchNorm half
(folded into the convolution by model/fold.py) and the InstanceNorm half. onnxruntime runs convolutions in its
blocked NCHWc layout and Slice in plain NCHW, so each pair of Slices costs a layout reorder of the whole output
plus two half-size copies. When every consumer of a convolution is such a channel Slice, each slice becomes its
own convolution on the rows of W (and bias) it keeps: the same dot products for the same output channels (fp32
rounding may differ only where the kernel blocks the channels differently); export's parity check still runs
on the result. Off by default: measured a loss (docs/benchmarks.md: onnxruntime per-node
profile, AMD EPYC AVX2, issue 20: the half-width convolutions lose more than the Slices, BatchNorm and reorders
they remove); kept registered for measurement (`export_onnx(add=("split-sliced-conv",))`).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graph import GraphView, channel_slice, op_name, view_of
from .base import Pass


def split_sliced_convs(model: onnx.ModelProto, view: GraphView | None = None) -> int:
    """Rewrite, in place, every Conv (weights and bias initializers) whose output is used only by Slices along
    the channel axis with constant starts/ends and step 1; return how many Convs were split."""
    view = view_of(model, view)
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    constants = view.constants()
    consumers = view.readers()
    outputs = {o.name for o in graph.output}

    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for conv in graph.node:
        if conv.op_type != "Conv" or conv.input[1] not in weights or conv.output[0] in outputs:
            continue
        if len(conv.input) > 2 and conv.input[2] and conv.input[2] not in weights:
            continue
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        users = consumers.get(conv.output[0], [])
        if group != 1 or not users or any(u.op_type != "Slice" or u.input[0] != conv.output[0] for u in users):
            continue
        w = numpy_helper.to_array(weights[conv.input[1]])
        b = numpy_helper.to_array(weights[conv.input[2]]) if len(conv.input) > 2 and conv.input[2] else None
        ranges = []
        for s in users:
            rng = channel_slice(s, constants, w.shape[0])
            if rng is None:
                break
            ranges.append((s, *rng))
        else:
            nodes = []
            for k, (s, a, e) in enumerate(ranges):
                wn = f"{conv.input[1]}_ch{a}_{e}"
                graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w[a:e]), wn))
                ins = [conv.input[0], wn]
                if b is not None:
                    bn = f"{conv.input[2]}_ch{a}_{e}"
                    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(b[a:e]), bn))
                    ins.append(bn)
                node = helper.make_node("Conv", ins, [s.output[0]], name=op_name(f"{conv.name}_ch{a}_{e}", "Conv"))
                node.attribute.extend(conv.attribute)
                nodes.append(node)
                dropped.add(id(s))
            replaced[id(conv)] = nodes
    if replaced:
        view.replace_nodes(replaced, dropped)
    return len(replaced)


PASS = Pass(name="split-sliced-conv", profiles=frozenset({"any", "onnxruntime"}),
            apply=lambda model, ctx: split_sliced_convs(model, ctx.view), default=False,
            exact="the same dot products for the same output channels (rows of W and bias kept per slice)")

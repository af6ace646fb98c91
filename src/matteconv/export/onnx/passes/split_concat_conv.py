"""`split-concat-conv`: `Conv(Concat(x1, ..., xn))` -> `Conv(x1, W1) + ... + Conv(xn, Wn)`.

Why: MODNet's HR and fusion branches convolve concatenations such as 32 feature channels + the 3-channel
image (35, 67, 99 channels). onnxruntime's fast blocked (NCHWc) convolutions need channel counts in whole
blocks, so those convolutions fall back to a slower path, the largest at full resolution; the split keeps each
part on the fast path and the Adds fuse into the convolutions. It is the same sum over input channels in another
order (fp32 rounding only), and export's parity check against PyTorch still runs on the result. Runs after
`relu-before-concat`, which puts the Concats of IBNorm halves directly in front of their convolutions.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graph import GraphView, ShapeLookup, op_name, view_of
from .base import Pass


def split_concat_convs(model: onnx.ModelProto, view: GraphView | None = None) -> int:
    """Rewrite, in place, every ungrouped Conv whose data input is a channel Concat read only by such Convs
    (IBNorm's two channel halves, once split by `split-sliced-conv`, read the same Concat), until none is left:
    a part may read a Concat itself (MODNet's `Concat(IBNorm output, IBNorm output)` once the ReLUs moved);
    return how many Convs were split."""
    view = view_of(model, view)
    channels = ShapeLookup(view, "channels")
    total = 0
    while n := _split_once(view, channels):
        total += n
    return total


def _split_once(view: GraphView, channels: ShapeLookup) -> int:
    graph = view.graph
    readers = view.readers()
    outputs = {o.name for o in graph.output}
    weights = {init.name: init for init in graph.initializer}

    def split(conv: onnx.NodeProto, cat: onnx.NodeProto):
        """(new nodes, new initializers) for one Conv reading `cat`, or None if it cannot be split."""
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        if conv.op_type != "Conv" or conv.input[0] != cat.output[0] or group != 1 or conv.input[1] not in weights:
            return None
        w = numpy_helper.to_array(weights[conv.input[1]])
        sizes = [channels[x] for x in cat.input]
        if sum(sizes) != w.shape[1]:
            return None
        bias = conv.input[2:3]
        nodes, inits, partial, start = [], {}, None, 0
        for k, (x, c) in enumerate(zip(cat.input, sizes)):
            part_w = f"{conv.input[1]}_part{k}"
            arr = np.ascontiguousarray(w[:, start:start + c])
            if part_w in weights and not np.array_equal(numpy_helper.to_array(weights[part_w]), arr):
                part_w = f"{part_w}_ch{start}_{start + c}"  # a weight shared by Convs whose Concats split it apart
            if part_w not in weights:
                inits[part_w] = numpy_helper.from_array(arr, part_w)
            start += c
            part = f"{conv.output[0]}_part{k}"
            node = helper.make_node("Conv", [x, part_w, *(bias if k == 0 else [])], [part],
                                    name=op_name(f"{conv.name}_part{k}", "Conv"))
            node.attribute.extend(conv.attribute)
            nodes.append(node)
            if partial is not None:
                total = conv.output[0] if k == len(sizes) - 1 else f"{conv.output[0]}_sum{k}"
                nodes.append(helper.make_node("Add", [partial, part], [total],
                                              name=op_name(f"{conv.name}_sum{k}", "Add")))
                part = total
            partial = part
        return nodes, inits

    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for cat in graph.node:
        axis = next((a.i for a in cat.attribute if a.name == "axis"), None)
        if cat.op_type != "Concat" or axis not in (1, -3) or len(cat.input) < 2 or cat.output[0] in outputs:
            continue
        if any(x not in channels for x in cat.input) or not readers.get(cat.output[0]):
            continue
        parts = [split(conv, cat) for conv in readers[cat.output[0]]]
        if any(p is None for p in parts):  # something other than a splittable Conv reads it: left as it is
            continue
        for conv, (nodes, inits) in zip(readers[cat.output[0]], parts):
            replaced[id(conv)] = nodes
            for name, init in inits.items():
                if name not in weights:
                    weights[name] = init
                    graph.initializer.append(init)
        dropped.add(id(cat))

    if not replaced:
        return 0
    view.replace_nodes(replaced, dropped)
    return len(replaced)


PASS = Pass(name="split-concat-conv", profiles=frozenset({"any", "onnxruntime"}),
            apply=lambda model, ctx: split_concat_convs(model, ctx.view), after=("relu-before-concat",),
            exact="the same sum over input channels in another order (fp32 rounding only)")

"""Split `Conv(Concat(x1, ..., xn))` into `Conv(x1, W1) + ... + Conv(xn, Wn)`.

Why: MODNet's HR and fusion branches convolve concatenations such as 32 feature channels + the 3-channel
image (35, 67, 99 channels). onnxruntime's fast blocked (NCHWc) convolutions need channel counts in whole
blocks, so those convolutions fall back to a slower path, the largest at full resolution; the split keeps each
part on the fast path and the Adds fuse into the convolutions. It is the same sum over input channels in another
order (fp32 rounding only), and export's parity check against PyTorch still runs on the result.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _channels(model: onnx.ModelProto) -> dict[str, int]:
    """Static channel count (axis 1) of every 4-D tensor shape inference can see."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    out = {}
    for vi in infos:
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            out[vi.name] = dims[1].dim_value
    return out


def split_concat_convs(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every ungrouped Conv whose data input is a channel Concat used by nothing else;
    return how many were split."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            uses[name] = uses.get(name, 0) + 1
    for o in graph.output:
        uses[o.name] = uses.get(o.name, 0) + 1
    weights = {init.name: init for init in graph.initializer}
    channels = _channels(model)

    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for conv in graph.node:
        cat = producer.get(conv.input[0]) if conv.op_type == "Conv" else None
        if cat is None or cat.op_type != "Concat" or uses.get(cat.output[0]) != 1 or len(cat.input) < 2:
            continue
        group = next((a.i for a in conv.attribute if a.name == "group"), 1)
        axis = next((a.i for a in cat.attribute if a.name == "axis"), None)
        if group != 1 or axis not in (1, -3):
            continue
        if conv.input[1] not in weights or any(x not in channels for x in cat.input):
            continue
        w = numpy_helper.to_array(weights[conv.input[1]])
        sizes = [channels[x] for x in cat.input]
        if sum(sizes) != w.shape[1]:
            continue
        bias = conv.input[2:3]
        nodes, partial, start = [], None, 0
        for k, (x, c) in enumerate(zip(cat.input, sizes)):
            part_w = f"{conv.input[1]}_part{k}"
            graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w[:, start:start + c]), part_w))
            start += c
            part = f"{conv.output[0]}_part{k}"
            node = helper.make_node("Conv", [x, part_w, *(bias if k == 0 else [])], [part], name=f"{conv.name}_part{k}")
            node.attribute.extend(conv.attribute)
            nodes.append(node)
            if partial is not None:
                total = conv.output[0] if k == len(sizes) - 1 else f"{conv.output[0]}_sum{k}"
                nodes.append(helper.make_node("Add", [partial, part], [total], name=f"{conv.name}_sum{k}"))
                part = total
            partial = part
        replaced[id(conv)] = nodes
        dropped.add(id(cat))

    if not replaced:
        return 0
    replace_nodes(graph, replaced, dropped)
    return len(replaced)


def replace_nodes(graph: onnx.GraphProto, replaced: dict[int, list[onnx.NodeProto]], dropped: set[int]) -> None:
    """Put each node id in `replaced` by its new nodes (in place, in order), drop the ids in `dropped`, then the
    initializers and value_info nothing uses any more."""
    order = []
    for n in graph.node:
        if id(n) not in dropped:
            order.extend(replaced.get(id(n), [n]))
    del graph.node[:]
    graph.node.extend(order)
    _keep_only(graph.initializer, {name for n in graph.node for name in n.input})
    _keep_only(graph.value_info, {o for n in graph.node for o in n.output})


def _keep_only(field, names: set[str]) -> None:
    """Drop the entries of a repeated graph field (initializers, value_info) whose name is not in `names`."""
    kept = [item for item in field if item.name in names]
    del field[:]
    field.extend(kept)

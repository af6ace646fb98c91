"""Split `Conv(Concat(x1, ..., xn))` into `Conv(x1, W1) + ... + Conv(xn, Wn)`.

Why: MODNet's HR and fusion branches convolve concatenations such as 32 feature channels + the 3-channel
image (35, 67, 99 channels). onnxruntime's fast blocked (NCHWc) convolutions need channel counts in whole
blocks, so those convolutions fall back to a slower path, the largest at full resolution; the split keeps each
part on the fast path and the Adds fuse into the convolutions. It is the same sum over input channels in another
order (fp32 rounding only), and export's parity check against PyTorch still runs on the result.

`relus_before_concats` first moves each IBNorm's ReLU in front of its Concat (`Relu(Concat(a, b))` ->
`Concat(Relu(a), Relu(b))`, bitwise the same: ReLU is elementwise), so the next convolution reads the Concat
directly and is split too (18 convolutions instead of 6 in MODNet, some parts reading a Concat themselves):
no Concat of IBNorm halves is left in front of a convolution.
Measured on the AMD EPYC (AVX2) kind, alternating in one run: 0.3-7% faster than without it in each of 7 runs at
384 and 512 (README, "How the numbers look here").
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


def relus_before_concats(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every Relu whose input is a Concat read by nothing else into a Relu per Concat input
    (named `<relu>_in<k>`) and the Concat of those, named as the Relu was: it yields the Relu's output tensor, so
    `compare` still finds the ReLU module's output under the ReLU's scope; return how many."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            uses[name] = uses.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for relu in graph.node:
        cat = producer.get(relu.input[0]) if relu.op_type == "Relu" else None
        if cat is None or cat.op_type != "Concat" or uses.get(cat.output[0]) != 1 or cat.output[0] in outputs:
            continue
        relus = [helper.make_node("Relu", [x], [f"{relu.output[0]}_in{k}"], name=f"{relu.name}_in{k}")
                 for k, x in enumerate(cat.input)]
        joined = helper.make_node("Concat", [r.output[0] for r in relus], [relu.output[0]], name=relu.name)
        joined.attribute.extend(cat.attribute)
        replaced[id(cat)] = relus + [joined]
        dropped.add(id(relu))
    if replaced:
        replace_nodes(graph, replaced, dropped)
    return len(replaced)


def split_concat_convs(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every ungrouped Conv whose data input is a channel Concat read only by such Convs
    (IBNorm's two channel halves, once split by export/slice_conv.py, read the same Concat), until none is left:
    a part may read a Concat itself (MODNet's `Concat(IBNorm output, IBNorm output)` once the ReLUs moved);
    return how many Convs were split."""
    # shapes once: a pass adds only Conv parts and Adds, whose outputs no later pass needs the channels of (a
    # split Conv's last Add keeps its output name, and a Concat's inputs are tensors that existed before)
    channels = _channels(model)
    total = 0
    while n := _split_once(model, channels):
        total += n
    return total


def _split_once(model: onnx.ModelProto, channels: dict[str, int]) -> int:
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers = node_readers(graph)
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
            node = helper.make_node("Conv", [x, part_w, *(bias if k == 0 else [])], [part], name=f"{conv.name}_part{k}")
            node.attribute.extend(conv.attribute)
            nodes.append(node)
            if partial is not None:
                total = conv.output[0] if k == len(sizes) - 1 else f"{conv.output[0]}_sum{k}"
                nodes.append(helper.make_node("Add", [partial, part], [total], name=f"{conv.name}_sum{k}"))
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
    replace_nodes(graph, replaced, dropped)
    return len(replaced)


def node_readers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it, in graph order (a node reading it twice is listed twice)."""
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for name in n.input:
            out.setdefault(name, []).append(n)
    return out


def graph_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Tensor name -> value of every initializer and every Constant node (`value` attribute)."""
    out = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            out[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return out


def channel_slice(node: onnx.NodeProto, consts: dict, channels: int | None) -> tuple[int, int] | None:
    """(a, e) if `node` is a Slice of channels a:e (axis 1, step 1, constant bounds) of a C-channel tensor, with
    ONNX Slice's rules: a negative bound counts from the end, then both are clamped to [0, C]; else None."""
    args = [consts.get(x) if x else None for x in list(node.input[1:]) + [""] * 4][:4]
    starts, ends, axes, steps = args
    if channels is None or starts is None or ends is None or axes is None or starts.size != 1 or ends.size != 1:
        return None
    if int(axes.reshape(-1)[0]) not in (1, -3) or (steps is not None and int(steps.reshape(-1)[0]) != 1):
        return None
    a, e = int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])
    a, e = (a + channels if a < 0 else a), (e + channels if e < 0 else e)
    a, e = min(max(a, 0), channels), min(max(e, 0), channels)
    return (a, e) if a < e else None


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

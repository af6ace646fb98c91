"""`ort-matmul-head` (`--runtime onnxruntime`): a 1x1 convolution to one channel (MODNet's alpha head) as a MatMul.

Why: onnxruntime's NCHWc Conv pads its output channels up to a whole block (MLAS: 16 with AVX-512, 8 with AVX2 or
AVX; `ort_block.nchwc_block_size`), so a head to one channel writes a block of channels, 15 of 16 of them padding,
and a reorder then copies the one real channel out. At full resolution that is most of the head's time: on
MODNet's `conv_f.1` (two 8-channel parts after the Concat split, 384x384) the two Convs took 1.31 + 1.16 ms and
the reorder 0.39 ms, against 0.15 + 0.16 ms for the MatMuls that replace them (onnxruntime's profiler, AMD EPYC
with AVX-512). A MatMul reads plain NCHW and writes the one channel. Only for heads that read fewer channels than
a block, which the Conv reads in NCHW anyway (see `one_channel_heads_as_matmul`). Whole model, with the halves
below: -1.6 / -2.9 ms at 384 / 512 on that machine.

`N x C x H x W -> Reshape (N, C, H*W) -> MatMul with the weight as 1 x C -> N x 1 x H*W (+ bias) -> Reshape
N x 1 x H x W`: the same C products per output, summed in another order (fp32; export's parity check judges it
as every rewrite). The head's input is better left in NCHW too: `read_only_by_heads` tells `ort-select-ibnorm`
and `ort-blocked-in-relu` which IBNorm halves reach only such a MatMul, so they keep them in NCHW instead of
selecting them into the blocked layout and reordering them back out: both run after this pass.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..graph import GraphView, attr, builders, op_name, view_of
from .base import Pass

HEAD_SUFFIX = "_head_MatMul"  # the head MatMul's name ends so (read_only_by_heads finds it by that)
# the ops between an IBNorm half's channel Slice and the head that reads it: BatchNorm or the centred
# InstanceNorm (centre_instance_norm.py), then the ReLU, then the head's own Reshape
HALF_TO_HEAD = ("BatchNormalization", "ReduceMean", "Sub", "InstanceNormalization", "Relu", "Reshape")


def _is_one_channel_1x1(conv: onnx.NodeProto, consts) -> bool:
    w = consts.get(conv.input[1]) if conv.op_type == "Conv" and len(conv.input) > 1 else None
    b = consts.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(1)
    return (w is not None and w.ndim == 4 and w.shape[0] == 1 and w.shape[2:] == (1, 1) and b is not None
            and b.size == 1 and attr(conv, "group", 1) == 1 and set(attr(conv, "strides", [1, 1])) == {1}
            and set(attr(conv, "dilations", [1, 1])) == {1} and set(attr(conv, "pads", [0] * 4)) == {0}
            and attr(conv, "auto_pad", b"NOTSET") in (b"NOTSET", b""))


def one_channel_heads_as_matmul(model: onnx.ModelProto, block: int, view: GraphView | None = None) -> int:
    """Rewrite, in place, every 1x1 Conv to one output channel (group 1, stride 1, no padding, constant weight
    and bias) whose input has a static N x C x H x W shape with C < `block` into Reshape -> MatMul (-> Add bias)
    -> Reshape, as above; return how many. Output N x 1 x H x W float32 under the Conv's output name.

    `block`: the NCHWc block of the CPU the file is for (`ort_block.nchwc_block_size`). Below a block of input
    channels the Conv reads plain NCHW anyway, so the MatMul reads the same bytes and writes a block's fraction
    of them. From a block up the Conv reads a blocked input, and the MatMul would need a reorder of all C
    channels in its place: with AVX2's 8-channel blocks MODNet's 8-channel heads are left alone (measured: equal
    at 384, 2.5 ms slower at 512 with the MatMul)."""
    view = view_of(model, view)
    graph = model.graph
    consts = view.constants()
    replaced: dict[int, list[onnx.NodeProto]] = {}
    nodes = list(graph.node)  # held until replace_nodes, which finds them by id
    for conv in nodes:
        shape = view.static_shape(conv.input[0]) if conv.op_type == "Conv" else None
        if shape is None or len(shape) != 4 or shape[1] >= block or not _is_one_channel_1x1(conv, consts):
            continue
        n, c, h, w = shape
        name = (conv.name or conv.output[0]) + "_head_matmul"  # its tensors' and initializers' names
        head: list[onnx.NodeProto] = []
        const, _ = builders(graph, name, head)
        flat = helper.make_node("Reshape", [conv.input[0], const("flat", np.array([n, c, h * w], np.int64))],
                                [f"{name}_x"], name=op_name(f"{name}_flatten", "Reshape"))
        weight = consts[conv.input[1]].reshape(1, c).astype(np.float32)
        product = helper.make_node("MatMul", [const("weight", weight), flat.output[0]], [f"{name}_y"],
                                   name=(conv.name or conv.output[0]) + HEAD_SUFFIX)
        head += [flat, product]
        if len(conv.input) > 2 and conv.input[2]:
            bias = consts[conv.input[2]].reshape(1, 1, 1).astype(np.float32)
            head.append(helper.make_node("Add", [product.output[0], const("bias", bias)], [f"{name}_yb"],
                                         name=op_name(f"{name}_bias", "Add")))
        head.append(helper.make_node("Reshape", [head[-1].output[0], const("shape", np.array([n, 1, h, w],
                                                                                           np.int64))],
                                     list(conv.output), name=op_name(f"{name}_unflatten", "Reshape")))
        replaced[id(conv)] = head
    if replaced:
        view.replace_nodes(replaced, set())
    return len(replaced)


def read_only_by_heads(tensor: str, readers: dict[str, list[onnx.NodeProto]]) -> bool:
    """True if every path from `tensor` through the ops in HALF_TO_HEAD ends in a head MatMul of
    `one_channel_heads_as_matmul` (and at least one does): nothing on the way runs in onnxruntime's blocked
    layout, so keeping this tensor blocked would only add reorders."""
    seen, todo, heads = set(), [tensor], 0
    while todo:
        t = todo.pop()
        for node in readers.get(t, []):
            if node.op_type == "MatMul" and node.name.endswith(HEAD_SUFFIX):
                heads += 1
            elif node.op_type in HALF_TO_HEAD:
                if id(node) not in seen:
                    seen.add(id(node))
                    todo.extend(node.output)
            else:
                return False
    return heads > 0


PASS = Pass(name="ort-matmul-head", profiles=frozenset({"onnxruntime"}),
            apply=lambda model, ctx: one_channel_heads_as_matmul(model, ctx.block, ctx.view),
            exact="the same C products per output pixel, summed in another order (fp32)")

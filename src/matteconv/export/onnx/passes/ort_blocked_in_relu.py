"""`ort-blocked-in-relu` (`--runtime onnxruntime`): each InstanceNorm's ReLU read through a 1x1 identity conv.

Why: the ReLU after each InstanceNormalization reads it through a 1x1 depthwise identity convolution, so the
ReLU fuses into a blocked convolution (onnxruntime's NCHWc layout, see ort_select_ibnorm.py) and the InstanceNorm
half joins the BatchNorm half in a blocked Concat. Not for a half narrower than this CPU's NCHWc block (MLAS: 16
channels with AVX-512, 8 with AVX2 or AVX; `ort_block.nchwc_block_size`): its reader, a convolution of fewer
channels than a block, takes plain NCHW input, so the identity convolution only added a reorder in and one back
out (MODNet's full-resolution `conv_f`, 8 channels per half: 0.856 / 0.832 against 0.873 / 0.862 of the plain
export's time at 384 / 512 on an AMD EPYC with AVX-512, same run; with AVX2's 8-channel blocks the rule keeps
it, and leaving it out there measured 0.886 against 0.875 at 384). Not for ReLUs only a MatMul head reads
(`ort-matmul-head` runs first). Exact: the identity convolution multiplies by 1 and adds nothing.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graph import GraphView, op_name, view_of
from .base import Pass
from .ort_matmul_head import read_only_by_heads


def blocked_instance_norm_relus(model: onnx.ModelProto, block: int = 1, view: GraphView | None = None) -> int:
    """Rewrite, in place, `Relu(InstanceNormalization(x))` (the InstanceNormalization read by nothing else, with at
    least `block` channels) into `Relu(Conv_depthwise_1x1(InstanceNormalization(x), W=1))`; return how many.
    Shapes: N x C x H x W float32 throughout; W is C x 1 x 1 x 1 ones, group C. x * 1 + nothing is x exactly.
    `block`: the NCHWc block of the CPU the file is for (`nchwc_block_size`); a narrower half stays in NCHW."""
    view = view_of(model, view)
    graph = model.graph
    producer, readers = view.producers(), view.readers()
    outputs = {o.name for o in graph.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}
    for relu in graph.node:
        norm = producer.get(relu.input[0]) if relu.op_type == "Relu" else None
        if norm is None or norm.op_type != "InstanceNormalization" or norm.output[0] in outputs:
            continue
        c = view.channels(norm.output[0])
        if c is None or c < block or len(readers.get(norm.output[0], [])) != 1 \
                or read_only_by_heads(relu.output[0], readers):
            continue
        name = f"{norm.name}_blocked"
        graph.initializer.append(numpy_helper.from_array(np.ones((c, 1, 1, 1), np.float32), f"{name}.weight"))
        conv = helper.make_node("Conv", [norm.output[0], f"{name}.weight"], [f"{norm.output[0]}_blocked"],
                                name=op_name(f"{relu.name}_blocked", "Conv"), group=c, kernel_shape=[1, 1])
        new_relu = helper.make_node("Relu", [conv.output[0]], list(relu.output), name=relu.name)
        replaced[id(relu)] = [conv, new_relu]
    if replaced:
        view.replace_nodes(replaced, set())
    return len(replaced)


PASS = Pass(name="ort-blocked-in-relu", profiles=frozenset({"onnxruntime"}),
            apply=lambda model, ctx: blocked_instance_norm_relus(model, ctx.block, ctx.view),
            after=("ort-matmul-head",), exact="a depthwise 1x1 convolution with weight 1 and no bias is x exactly")

"""`export --runtime onnxruntime`: keep IBNorm and the x2 upsamples in onnxruntime's blocked NCHWc layout.

Why: onnxruntime's CPU provider runs Conv, pooling, Concat, Relu, same-shape Add/Mul and Resize (nearest, or
linear with `half_pixel`, `asymmetric` or `align_corners` and constant integer scales) in its blocked NCHWc
layout, and everything else in plain NCHW, with a reorder of the whole tensor at each crossing (onnxruntime
core/optimizer/nchwc_transformer.cc; checked on onnxruntime 1.32 by saving the optimised graph). MODNet's 16
IBNorms and 6 bilinear x2 upsamples cross it several times each: a Slice per half, a BatchNormalization after a
Slice, a Concat with a plain-layout half, and Resize with `pytorch_half_pixel`, which the blocked Upsample does not
take. Three rewrites keep them inside:

- `select_ibnorm_halves`: each channel Slice of IBNorm becomes a 1x1 convolution that selects those channels
  (`W[j, a + j] = 1`); the BatchNorm half's selector also carries the BatchNorm (scale and shift folded in
  float64). A 1x1 convolution runs blocked; the Slices and the BatchNormalization are gone. Not for halves that
  only a MatMul head reads (export/matmul_head.py): those run in NCHW either way.
- `blocked_instance_norm_relus`: the ReLU after each InstanceNormalization reads it through a 1x1 depthwise
  identity convolution, so the ReLU fuses into a blocked convolution and the InstanceNorm half joins the
  BatchNorm half in a blocked Concat. Not for a half narrower than this CPU's NCHWc block (MLAS: 16 channels
  with AVX-512, 8 with AVX2 or AVX; `nchwc_block_size`): its reader, a convolution of fewer channels than a
  block, takes plain NCHW input, so the identity convolution only added a reorder in and one back out
  (MODNet's full-resolution `conv_f`, 8 channels per half: 0.856 / 0.832 against 0.873 / 0.862 of the plain
  export's time at 384 / 512 on an AMD EPYC with AVX-512, same run; with AVX2's 8-channel blocks the rule keeps
  it, and leaving it out there measured 0.886 against 0.875 at 384).
- `half_pixel_upsamples`: every bilinear upsample written as `pytorch_half_pixel` is written as `half_pixel`,
  which ONNX defines identically unless an output side is 1 (only rewritten where every spatial scale is 1 or
  at least 2, so no output side can be 1).

Exactness: the selectors multiply by exactly 1 (or apply the folded BatchNorm scale and shift: fp32 rounding of
the fold only), the identity convolution multiplies by 1, and the Resize mode is the same formula; export's
parity check against PyTorch still judges the result.

Not for atc: Ascend's ONNX parser computes `half_pixel` as asymmetric (reference/ascend-operator-rules.md), and
the selectors add 1x1 convolutions the device does not need. `matteconv om` refuses a file exported this way
(ascend/command.py). Measured (README, "How the numbers look here"): onnxruntime 1.32, Intel Xeon AVX-512, 2
threads, timed alternately against the plain export at 384 / 512: 0.90-0.93 / 0.88-0.90 of its time as exported
for any runtime, 0.818-0.840 / 0.802-0.810 with these rewrites.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .concat_conv import _channels, channel_slice, graph_constants, node_readers, replace_nodes
from .matmul_head import one_channel_heads_as_matmul, read_only_by_heads
from .upsample_conv import rewrite_upsampled_convs

IN_HALF_READERS = ("ReduceMean", "Sub", "InstanceNormalization")  # the centred InstanceNorm (instance_norm.py)


def select_ibnorm_halves(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every channel Slice read only by a BatchNormalization (IBNorm's BatchNorm half) into a
    1x1 Conv with the BatchNorm folded in, and every channel Slice read only by the centred InstanceNorm
    (ReduceMean / Sub / InstanceNormalization) into a 1x1 identity-selecting Conv; return how many Slices.

    Shapes: input N x C x H x W float32, output N x (e - a) x H x W; weights (e - a) x C x 1 x 1. The BatchNorm
    fold: s = gamma / sqrt(var + eps), b = beta - mean * s, in float64, stored as float32 (ONNX
    BatchNormalization's inference formula). Node names keep the replaced node's scope, and each Conv writes the
    tensor the replaced node wrote, so `compare` still finds IBNorm's halves."""
    graph = model.graph
    consts, readers, channels = graph_constants(graph), node_readers(graph), _channels(model)
    outputs = {o.name for o in graph.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    for sl in graph.node:
        if sl.op_type != "Slice" or sl.output[0] in outputs:
            continue
        rng = channel_slice(sl, consts, channels.get(sl.input[0]))
        users = readers.get(sl.output[0], [])
        if rng is None or not users or read_only_by_heads(sl.output[0], readers):
            continue
        (a, e), c = rng, channels[sl.input[0]]
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
        replaced[id(sl)] = [helper.make_node("Conv", ins, [out], name=name, kernel_shape=[1, 1])]
    if replaced:
        replace_nodes(graph, replaced, dropped)
    return len(replaced)


@functools.lru_cache(maxsize=1)
def nchwc_block_size() -> int:
    """The NCHWc block, in channels, that onnxruntime's CPU provider uses in this process: 16 with AVX-512F, 8 with
    AVX or AVX2, 1 where it keeps every convolution in NCHW (MLAS `MlasNchwcGetBlockSize`, which Python cannot
    call). Read off a probe: a 1x1 Conv to one channel, optimised and saved, stores its weight padded to one
    whole block. Asked of onnxruntime itself rather than of /proc/cpuinfo, because what the process is shown
    (a CPUID mask, a VM's CPU model) is what MLAS dispatches on."""
    import onnxruntime as ort

    w = numpy_helper.from_array(np.ones((1, 4, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])], [w])
    probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(Path(tmp) / "probe.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
        optimised = onnx.load(so.optimized_model_filepath)
    if not any(n.domain == "com.microsoft.nchwc" for n in optimised.graph.node):
        return 1
    return max(int(i.dims[0]) for i in optimised.graph.initializer if len(i.dims) == 4)


def blocked_instance_norm_relus(model: onnx.ModelProto, block: int = 1) -> int:
    """Rewrite, in place, `Relu(InstanceNormalization(x))` (the InstanceNormalization read by nothing else, with at
    least `block` channels) into `Relu(Conv_depthwise_1x1(InstanceNormalization(x), W=1))`; return how many.
    Shapes: N x C x H x W float32 throughout; W is C x 1 x 1 x 1 ones, group C. x * 1 + nothing is x exactly.
    `block`: the NCHWc block of the CPU the file is for (`nchwc_block_size`); a narrower half stays in NCHW."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers, channels = node_readers(graph), _channels(model)
    outputs = {o.name for o in graph.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}
    for relu in graph.node:
        norm = producer.get(relu.input[0]) if relu.op_type == "Relu" else None
        if norm is None or norm.op_type != "InstanceNormalization" or norm.output[0] in outputs:
            continue
        c = channels.get(norm.output[0])
        if c is None or c < block or len(readers.get(norm.output[0], [])) != 1 \
                or read_only_by_heads(relu.output[0], readers):
            continue
        name = f"{norm.name}_blocked"
        graph.initializer.append(numpy_helper.from_array(np.ones((c, 1, 1, 1), np.float32), f"{name}.weight"))
        conv = helper.make_node("Conv", [norm.output[0], f"{name}.weight"], [f"{norm.output[0]}_blocked"],
                                name=name, group=c, kernel_shape=[1, 1])
        new_relu = helper.make_node("Relu", [conv.output[0]], list(relu.output), name=relu.name)
        replaced[id(relu)] = [conv, new_relu]
    if replaced:
        replace_nodes(graph, replaced, set())
    return len(replaced)


def half_pixel_upsamples(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every linear Resize with `pytorch_half_pixel` and constant scales whose spatial scales
    are each 1 or >= 2 to `half_pixel`; return how many. ONNX Resize: the two modes differ only where an output
    length is 1, which such scales cannot give (an input side is >= 1)."""
    consts = graph_constants(model.graph)
    n = 0
    for node in model.graph.node:
        if node.op_type != "Resize" or len(node.input) < 3 or not node.input[2]:
            continue
        attrs = {a.name: a for a in node.attribute}
        mode, ctm = attrs.get("mode"), attrs.get("coordinate_transformation_mode")
        scales = consts.get(node.input[2])
        if mode is None or mode.s != b"linear" or ctm is None or ctm.s != b"pytorch_half_pixel" or scales is None:
            continue
        if scales.size != 4 or not all(s == 1 or s >= 2 for s in scales.reshape(-1)[2:]):
            continue
        ctm.s = b"half_pixel"
        n += 1
    return n


def exported_runtime(model: onnx.ModelProto) -> str:
    """The runtime an ONNX file was exported for (export_onnx's `runtime`, kept in metadata_props); files from
    elsewhere, or from before the option, are `any`."""
    return next((p.value for p in model.metadata_props if p.key == "runtime"), "any")


def tune_for_onnxruntime(model: onnx.ModelProto, block: int | None = None) -> dict[str, int]:
    """export/matmul_head.py's alpha heads first (so the two IBNorm rewrites leave the halves only a head reads in
    NCHW), then the three rewrites above and export/upsample_conv.py's, in order, for a CPU whose NCHWc block is
    `block` channels (None: this one's, `nchwc_block_size`); the counts by name and the block (written into the
    export's metadata)."""
    block = nchwc_block_size() if block is None else block
    heads = one_channel_heads_as_matmul(model, block)
    counts = {"ibnorm_halves_selected": select_ibnorm_halves(model),
              "instance_norm_relus_blocked": blocked_instance_norm_relus(model, block),
              "upsamples_half_pixel": half_pixel_upsamples(model)}
    upsampled = rewrite_upsampled_convs(model)
    return {**counts, "upsampled_convs_phased": upsampled["phased"],
            "upsampled_convs_contracted": upsampled["contracted"], "one_channel_heads_matmul": heads,
            "nchwc_block": block}

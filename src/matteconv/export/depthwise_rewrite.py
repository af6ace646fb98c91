"""Exact rewrites of depthwise convolutions that break CANN's depthwise buffer rule, planned once for ONNX and Caffe.

The rule (CANN Convolution operator page, `conv.depthwise-buffer` in ascend/rules.py): for group == channels,
    Fh*Fw*32 + W*(31*stride_h + Fw) <= 32768        (W = input width)
The buffer holds the (31*stride_h + F) input rows that 32 output rows need, times the width: it grows with the
*vertical* stride and with the width, never with the horizontal stride. MobileNetV2's 3x3 stride-2 depthwise
convolutions break it from input width 520 (704x1280: 640 wide, 41,888), and its stride-1 ones from 956
(1088x1920: 960 wide, 32,928). Two exact rewrites fix every case MODNet meets:

1. Vertical stride out: a (sh, sw)-strided conv = the (1, sw)-strided conv, then every sh-th row. Row r of
   the strided output is row r*sh of the stride-1 one: the same sums of the same products.
   ONNX: Slice(axes=[2], steps=[sh]). CANN's ONNX Slice requires the step of the *last* axis to be 1
   (Slice page, "steps: the value of the last axis must be 1", atlasoxol_09_0150): rows are axis 2, so it
   holds; a column subsample by Slice would not, which is why the horizontal stride stays in the conv.
   Caffe (no strided Slice): a depthwise 1x1 Convolution with weight 1, stride (sh, 1), no bias: x*1 is exact
   in fp32 and fp16; it passes the rule up to width (32768 - 32) / (31*sh + 1) (519 for sh = 2), so with a
   width split it runs on each piece before the Concat.
2. Width split: output columns [o0, o1) need input columns [o0*sw - pl, (o1-1)*sw - pl + Fw); each piece is
   the same conv on its input columns with the left/right padding only where the piece touches the frame's
   edge, and the pieces are concatenated along the width. Adjacent pieces overlap by Fw - sw columns (Fw - 1
   at stride 1). Every output pixel is the sum of the same products as before.
   ONNX: Slice(axes=[3]) + Conv(pads=[pt, left, pb, right]) per piece + Concat(axis=3).
   Caffe (Convolution pads are symmetric): Slice the input into non-overlapping chunks, Concat the chunks each
   piece needs (shared chunks are read twice), add the edge padding as explicit zero columns made by
   Power(scale 0, shift 0) from an edge chunk (Caffe's Power writes exactly 0 for scale 0), pad_w 0.
   Target `ddk` has no Slice (old DDK list): it gets rewrite 1 only, and a note when a piece split was needed.

Anything the two cannot fix (a kernel so large that even a one-column piece breaks the rule, dilation) is left
as it is and stays an error of the rules check, which names the layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

BUDGET = 32768  # ascend/rules.py DEPTHWISE_BUDGET (same source)


def depthwise_need(kh: int, kw: int, stride_h: int, width: int) -> int:
    """Left side of the rule: Fh*Fw*32 + W*(31*stride_h + Fw)."""
    return kh * kw * 32 + width * (31 * stride_h + kw)


@dataclass(frozen=True)
class Piece:
    """Output columns [out0, out1) from input columns [in0, in1) with `left`/`right` zero columns."""

    out0: int
    out1: int
    in0: int
    in1: int
    left: int
    right: int


@dataclass
class Plan:
    row_step: int  # 1, or the vertical stride taken out of the conv
    pieces: list[Piece] = field(default_factory=list)  # one piece = no width split

    def describe(self, kh: int, kw: int, sh: int, sw: int, width: int) -> str:
        parts = []
        if self.row_step > 1:
            parts.append(f"stride {sh}x{sw} -> stride 1x{sw} + rows 0::{self.row_step}")
        if len(self.pieces) > 1:
            widths = [p.in1 - p.in0 + p.left + p.right for p in self.pieces]
            parts.append(f"split into {len(self.pieces)} width pieces (input widths {', '.join(map(str, widths))},"
                         f" overlap {kw - sw})")
        worst = max(depthwise_need(kh, kw, 1 if self.row_step > 1 else sh, p.in1 - p.in0 + p.left + p.right)
                    for p in self.pieces)
        return (f"depthwise {kh}x{kw} stride-{sh} on width {width} "
                f"({depthwise_need(kh, kw, sh, width):,} > {BUDGET:,}): {'; '.join(parts)} "
                f"(worst {worst:,} <= {BUDGET:,})")


def _pieces(n: int, out_w: int, kw: int, sw: int, pl: int, width: int) -> list[Piece]:
    bounds = [round(i * out_w / n) for i in range(n + 1)]
    out = []
    for o0, o1 in zip(bounds, bounds[1:]):
        a, b = o0 * sw - pl, (o1 - 1) * sw - pl + kw
        out.append(Piece(o0, o1, max(a, 0), min(b, width), max(0, -a), max(0, b - width)))
    return out


def plan_depthwise(kh: int, kw: int, sh: int, sw: int, pl: int, pr: int, width: int,
                   split: bool = True) -> Plan | None:
    """How to rewrite a depthwise conv on an input `width` wide (pads pl/pr left/right) so that every conv
    passes the rule; None when it passes already or when no exact rewrite here can make it pass. The buffer of
    a piece counts its explicit zero columns too (the Caffe form feeds them as real columns)."""
    if depthwise_need(kh, kw, sh, width) <= BUDGET:
        return None
    out_w = (width + pl + pr - kw) // sw + 1
    whole = [Piece(0, out_w, 0, width, pl, max(0, (out_w - 1) * sw - pl + kw - width))]
    if depthwise_need(kh, kw, 1, width) <= BUDGET:
        return Plan(sh, whole) if sh > 1 else None
    if not split:
        return Plan(sh, whole) if sh > 1 else None
    if depthwise_need(kh, kw, 1, kw) > BUDGET:  # even a one-column piece (kw input columns) breaks it
        return None
    widest = (BUDGET - kh * kw * 32) // (31 + kw)  # the widest piece input that passes
    first = max(2, -(-out_w * sw // max(1, widest - kw + 1)) - 1)  # a lower bound on the pieces needed
    for n in range(first, out_w + 1):
        pieces = _pieces(n, out_w, kw, sw, pl, width)
        if all(depthwise_need(kh, kw, 1, p.in1 - p.in0 + p.left + p.right) <= BUDGET for p in pieces):
            return Plan(sh, pieces)
    return None


def row_subsample_fits(step: int, width: int) -> bool:
    """The Caffe row subsample (depthwise 1x1, stride (step, 1)) against the same rule."""
    return depthwise_need(1, 1, step, width) <= BUDGET


# --- ONNX ------------------------------------------------------------------------------------------------------

def _shapes(model) -> dict[str, tuple[int, ...]]:
    import onnx

    g = onnx.shape_inference.infer_shapes(model).graph
    out = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            out[vi.name] = tuple(int(d.dim_value) for d in dims)
    return out


def rewrite_onnx(model) -> list[str]:
    """Rewrite, in place, every depthwise Conv of a static-shape graph that breaks the rule (see the module
    docstring); return one line per rewritten node. Dynamic shapes: nothing is known, nothing is rewritten."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    shapes = _shapes(model)
    weights = {init.name: init for init in graph.initializer}
    notes: list[str] = []
    new_nodes = []
    for node in graph.node:
        x_shape = shapes.get(node.input[0]) if node.op_type == "Conv" else None
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        group = int(attrs.get("group", 1))
        if x_shape is None or len(x_shape) != 4 or group == 1 or group != x_shape[1] \
                or node.input[1] not in weights or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            new_nodes.append(node)
            continue
        kh, kw = numpy_helper.to_array(weights[node.input[1]]).shape[2:]
        sh, sw = attrs.get("strides", [1, 1])
        pt, pl, pb, pr = attrs.get("pads", [0, 0, 0, 0])
        width = x_shape[3]
        plan = plan_depthwise(kh, kw, sh, sw, pl, pr, width)
        if plan is None:
            new_nodes.append(node)
            continue
        base = node.name or node.output[0]

        def const(name, values):
            graph.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), f"{base}/{name}"))
            return f"{base}/{name}"

        def conv(x, out, left, right):
            keep = {k: v for k, v in attrs.items() if k not in ("strides", "pads")}
            return helper.make_node("Conv", [x, *node.input[1:]], [out], name=out, strides=[1, sw],
                                    pads=[pt, left, pb, right], **keep)

        final = node.output[0]
        conv_out = f"{base}/rows1" if plan.row_step > 1 else final
        if len(plan.pieces) == 1:
            p = plan.pieces[0]
            new_nodes.append(conv(node.input[0], conv_out, p.left, p.right))
        else:
            parts = []
            for i, p in enumerate(plan.pieces):
                xi = f"{base}/cols{i}"
                new_nodes.append(helper.make_node("Slice", [node.input[0], const(f"cols{i}_start", [p.in0]),
                                                            const(f"cols{i}_end", [p.in1]), const("axis3", [3])]
                                                  if i == 0 else [node.input[0], const(f"cols{i}_start", [p.in0]),
                                                                  const(f"cols{i}_end", [p.in1]), f"{base}/axis3"],
                                                  [xi], name=xi))
                parts.append(f"{base}/part{i}")
                new_nodes.append(conv(xi, parts[-1], p.left, p.right))
            new_nodes.append(helper.make_node("Concat", parts, [conv_out], name=f"{base}/concat", axis=3))
        if plan.row_step > 1:
            new_nodes.append(helper.make_node(
                "Slice", [conv_out, const("rows_start", [0]), const("rows_end", [np.iinfo(np.int64).max]),
                          const("axis2", [2]), const("rows_step", [plan.row_step])], [final], name=f"{base}/rows"))
        notes.append(f"{base}: {plan.describe(kh, kw, sh, sw, width)}")
    if notes:
        del graph.node[:]
        graph.node.extend(new_nodes)
    return notes


# --- Caffe -----------------------------------------------------------------------------------------------------

def rewrite_caffe(net, accepts) -> list[str]:
    """Rewrite, in place, every depthwise Convolution of `net` (export/caffe/ir.Net, with blob shapes) that breaks
    the rule, using only layer types `accepts(type)` allows; return one line per rewrite (and per conv that a
    target without Slice could only partly fix). The last new layer keeps the conv's name and top."""
    import numpy as np

    from .caffe.ir import Layer

    notes: list[str] = []
    out_layers = []
    for layer in net.layers:
        p = layer.params.get("convolution_param", {})
        shape = net.shapes.get(layer.bottoms[0]) if layer.bottoms else None
        c = p.get("group", 1)
        if layer.type != "Convolution" or shape is None or c == 1 or c != shape[1] or "kernel_h" not in p \
                or p.get("dilation"):
            out_layers.append(layer)
            continue
        kh, kw, sh, sw, ph, pw = (p[k] for k in ("kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w"))
        width = shape[3]
        can_split = accepts("Slice") and accepts("Concat") and accepts("Power")
        plan = plan_depthwise(kh, kw, sh, sw, pw, pw, width, split=can_split)
        name, top, src = layer.name, layer.tops[0], layer.source
        if plan is None:
            out_layers.append(layer)
            if depthwise_need(kh, kw, sh, width) > BUDGET and not can_split:
                notes.append(f"{name}: depthwise {kh}x{kw} stride-{sh} on width {width} breaks the depthwise buffer "
                             "rule and needs a width split, which this target cannot express (no Slice layer)")
            continue
        widths = [pc.out1 - pc.out0 for pc in plan.pieces]  # the row subsample runs per piece, before Concat
        if plan.row_step > 1 and not all(row_subsample_fits(plan.row_step, w) for w in widths):
            out_layers.append(layer)
            notes.append(f"{name}: not rewritten: the row subsample on width {max(widths)} would break the rule")
            continue
        new: list[Layer] = []

        def add(n, type_, bottoms, params, blobs=()):
            new.append(Layer(n, type_, list(bottoms), [n], params, list(blobs), src))
            return n

        def conv(n, bottom, pad_w):
            """The conv at vertical stride 1, then (if it had one) every row_step-th row: 1x1 depthwise, weight 1."""
            q = dict(p, stride_h=1, pad_w=pad_w)
            if plan.row_step == 1:
                return add(n, "Convolution", [bottom], {"convolution_param": q}, layer.blobs)
            rows = add(n + "/rows1", "Convolution", [bottom], {"convolution_param": q}, layer.blobs)
            return add(n, "Convolution", [rows], {"convolution_param": {
                "num_output": c, "group": c, "kernel_h": 1, "kernel_w": 1, "stride_h": plan.row_step, "stride_w": 1,
                "pad_h": 0, "pad_w": 0, "bias_term": False}}, [np.ones((c, 1, 1, 1), np.float32)])

        if len(plan.pieces) == 1:
            conv(name, layer.bottoms[0], pw)
        else:
            zl, zr = plan.pieces[0].left, plan.pieces[-1].right
            cuts = sorted(({b for pc in plan.pieces for b in (pc.in0, pc.in1)} | {zl, width - zr}) - {0, width})
            edges = [0, *cuts, width]
            chunks = [f"{name}/cols{j}" for j in range(len(edges) - 1)]
            new.append(Layer(f"{name}/cols", "Slice", [layer.bottoms[0]], chunks,
                             {"slice_param": {"axis": 3, "slice_point": cuts}}, [], src))
            zero = {"power_param": {"power": 1.0, "scale": 0.0, "shift": 0.0}}
            zeros_l = add(f"{name}/zeros_left", "Power", [chunks[0]], zero) if zl else None
            zeros_r = add(f"{name}/zeros_right", "Power", [chunks[-1]], zero) if zr else None
            parts = []
            for i, pc in enumerate(plan.pieces):
                ins = [chunks[j] for j in range(len(chunks)) if pc.in0 <= edges[j] and edges[j + 1] <= pc.in1]
                ins = ([zeros_l] if pc.left else []) + ins + ([zeros_r] if pc.right else [])
                x = ins[0] if len(ins) == 1 else add(f"{name}/in{i}", "Concat", ins, {"concat_param": {"axis": 3}})
                parts.append(conv(f"{name}/part{i}", x, 0))
            add(name, "Concat", parts, {"concat_param": {"axis": 3}})
        new[-1].tops = [top]
        out_layers.extend(new)
        notes.append(f"{name}: {plan.describe(kh, kw, sh, sw, width)}")
    net.layers[:] = out_layers
    return notes

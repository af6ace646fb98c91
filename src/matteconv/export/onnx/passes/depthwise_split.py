"""`depthwise-split`: depthwise convolutions that break CANN's depthwise buffer rule, rewritten exactly (ONNX).

The rule, the plan and why each form is exact: export/depthwise_plan.py (shared with the Caffe emitter,
export/caffe/depthwise_split.py, and the rule check, ascend/rules.py). ONNX forms: the vertical stride out as
Slice(axes=[2], steps=[sh]) after the stride-(1, sw) conv; the width split as Slice(axes=[3]) + Conv(pads=[pt,
left, pb, right]) per piece + Concat(axis=3). Each plan is one line in the export's `rule_rewrites` metadata.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...depthwise_plan import plan_depthwise
from ..graph import GraphView, ShapeLookup, op_name, view_of
from .base import Pass, PassContext


def rewrite_onnx(model: onnx.ModelProto, view: GraphView | None = None) -> list[str]:
    """Rewrite, in place, every depthwise Conv of a static-shape graph that breaks the rule (see
    export/depthwise_plan.py); return one line per rewritten node. Dynamic shapes: nothing is known, nothing is
    rewritten."""
    view = view_of(model, view)
    graph = model.graph
    shapes = ShapeLookup(view, "static")
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

        def conv(x, out, role, left, right):
            keep = {k: v for k, v in attrs.items() if k not in ("strides", "pads")}
            return helper.make_node("Conv", [x, *node.input[1:]], [out], name=op_name(f"{base}_{role}", "Conv"),
                                    strides=[1, sw], pads=[pt, left, pb, right], **keep)

        final = node.output[0]
        conv_out = f"{base}/rows1" if plan.row_step > 1 else final
        if len(plan.pieces) == 1:
            p = plan.pieces[0]
            new_nodes.append(conv(node.input[0], conv_out, "rows1" if plan.row_step > 1 else "stride1", p.left,
                                   p.right))
        else:
            parts = []
            for i, p in enumerate(plan.pieces):
                xi = f"{base}/cols{i}"
                new_nodes.append(helper.make_node("Slice", [node.input[0], const(f"cols{i}_start", [p.in0]),
                                                            const(f"cols{i}_end", [p.in1]), const("axis3", [3])]
                                                  if i == 0 else [node.input[0], const(f"cols{i}_start", [p.in0]),
                                                                  const(f"cols{i}_end", [p.in1]), f"{base}/axis3"],
                                                  [xi], name=op_name(f"{base}_cols{i}", "Slice")))
                parts.append(f"{base}/part{i}")
                new_nodes.append(conv(xi, parts[-1], f"part{i}", p.left, p.right))
            new_nodes.append(helper.make_node("Concat", parts, [conv_out], name=op_name(f"{base}_cols", "Concat"),
                                              axis=3))
        if plan.row_step > 1:
            new_nodes.append(helper.make_node(
                "Slice", [conv_out, const("rows_start", [0]), const("rows_end", [np.iinfo(np.int64).max]),
                          const("axis2", [2]), const("rows_step", [plan.row_step])], [final],
                name=op_name(f"{base}_rows", "Slice")))
        notes.append(f"{base}: {plan.describe(kh, kw, sh, sw, width)}")
    if notes:
        del graph.node[:]
        graph.node.extend(new_nodes)
        view.changed()
    return notes


def _apply(model: onnx.ModelProto, ctx: PassContext) -> int:
    notes = rewrite_onnx(model, ctx.view)
    ctx.notes.extend(notes)
    return len(notes)


PASS = Pass(name="depthwise-split", profiles=frozenset({"any", "onnxruntime"}), apply=_apply,
            exact="vertical stride as a row subsample of the stride-1 conv, width pieces with edge padding only at "
                  "the frame's edges: every output is the sum of the same products")



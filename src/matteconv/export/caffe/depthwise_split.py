"""Caffe emitter of the depthwise plan (export/depthwise_plan.py): Slice, Power zero columns, Concat, row subsample.

See export/depthwise_plan.py for the rule, the two exact rewrites and why each Caffe form is exact.
"""
from __future__ import annotations

from ..depthwise_plan import BUDGET, depthwise_need, plan_depthwise, row_subsample_fits


def rewrite_caffe(net, accepts) -> list[str]:
    """Rewrite, in place, every depthwise Convolution of `net` (export/caffe/ir.Net, with blob shapes) that breaks
    the rule, using only layer types `accepts(type)` allows; return one line per rewrite (and per conv that a
    target without Slice could only partly fix). The last new layer keeps the conv's name and top."""
    import numpy as np

    from .ir import Layer

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

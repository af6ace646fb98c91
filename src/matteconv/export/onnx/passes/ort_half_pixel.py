"""`ort-half-pixel` (`--runtime onnxruntime`): bilinear x2 upsamples written `half_pixel` again.

Why: onnxruntime's blocked (NCHWc) Upsample takes linear Resize with `half_pixel`, `asymmetric` or
`align_corners` and constant integer scales, not the `pytorch_half_pixel` that `fix-resize-modes` writes for
Ascend (which runs first), so each of MODNet's 6 bilinear x2 upsamples left the blocked layout. ONNX defines the
two modes identically unless an output side is 1: only rewritten where every spatial scale is 1 or at least 2,
so no output side can be 1. Not for atc: Ascend's parser computes `half_pixel` as asymmetric
(docs/reference/ascend-operator-rules.md), which is why `matteconv om` refuses a file exported for onnxruntime.
"""
from __future__ import annotations

import onnx

from ..graph import GraphView, view_of
from .base import Pass


def half_pixel_upsamples(model: onnx.ModelProto, view: GraphView | None = None) -> int:
    """Rewrite, in place, every linear Resize with `pytorch_half_pixel` and constant scales whose spatial scales
    are each 1 or >= 2 to `half_pixel`; return how many. ONNX Resize: the two modes differ only where an output
    length is 1, which such scales cannot give (an input side is >= 1)."""
    consts = view_of(model, view).constants()
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


PASS = Pass(name="ort-half-pixel", profiles=frozenset({"onnxruntime"}),
            apply=lambda model, ctx: half_pixel_upsamples(model, ctx.view), after=("fix-resize-modes",),
            exact="half_pixel and pytorch_half_pixel are one formula unless an output side is 1 (ONNX Resize)")

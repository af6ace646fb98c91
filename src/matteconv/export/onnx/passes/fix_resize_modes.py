"""`fix-resize-modes`: every bilinear Resize's `half_pixel` written as `pytorch_half_pixel`.

Why: Ascend's ONNX parser treats only `pytorch_half_pixel` as half-pixel bilinear, but torch may write
`half_pixel` (same numbers in onnxruntime, wrong on the device: computed as asymmetric). ONNX defines the two
identically unless an output side is 1. `export_onnx` then refuses (check_ascend_safe) any Resize mode Ascend
would compute differently, so skipping this pass on a file for `any` runtime fails the export by name.
"""
from __future__ import annotations

import onnx

from .base import Pass, PassContext


def fix_resize_modes(model: onnx.ModelProto) -> int:
    """Rewrite every bilinear Resize's `half_pixel` to `pytorch_half_pixel` (identical unless a side is 1)."""
    n = 0
    for node in model.graph.node:
        if node.op_type != "Resize":
            continue
        attrs = {a.name: a for a in node.attribute}
        mode = attrs.get("coordinate_transformation_mode")
        if mode is None:
            node.attribute.append(onnx.helper.make_attribute("coordinate_transformation_mode", "pytorch_half_pixel"))
            n += 1
        elif mode.s == b"half_pixel":
            mode.s = b"pytorch_half_pixel"
            n += 1
    return n


def _apply(model: onnx.ModelProto, ctx: PassContext) -> int:
    return fix_resize_modes(model)


PASS = Pass(name="fix-resize-modes", profiles=frozenset({"any", "onnxruntime"}), apply=_apply,
            exact="half_pixel and pytorch_half_pixel are one formula unless an output side is 1 (ONNX Resize)",
            does="Resizes set to pytorch_half_pixel (the mode atc's Resize parser maps faithfully)")

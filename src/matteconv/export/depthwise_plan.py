"""The plan of exact rewrites for depthwise convolutions that break CANN's depthwise buffer rule, for ONNX and Caffe.

The emitters: export/onnx/passes/depthwise_split.py (ONNX) and export/caffe/depthwise_split.py (Caffe); the rule
itself (ascend/rules.py `conv.depthwise-buffer`) reads `depthwise_need` and `BUDGET` from here.

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

BUDGET = 32768  # the buffer, in bytes (CANN Convolution operator page)


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

"""`ort-upsampled-conv` (`--runtime onnxruntime`): a 5x5 conv of a bilinear x2 upsample, contracted first or in phases.

MODNet's LR branch upsamples the SE block's 1280-channel map x2 (bilinear, half-pixel, edges clamped) and runs a
5x5 convolution (pad 2) to 96 channels on it: 15% of the whole model's time in onnxruntime at 384x384 (the next
one, 96 -> 32 at 1/8, does the same). Both are linear, and the upsample works on each channel alone, so two
cheaper forms compute the same function:

- Contracted (C >= `CONTRACT_FROM` input channels: conv_lr16x). The channel sums commute with the upsample, so
  they run first, at low resolution: a 1x1 convolution gives each of the 25 taps' M-channel map,
  Y_rt = K[:, :, r, t] x (25 M output channels), the Resize upsamples those 25 M channels (clamped, as
  before), and the output is the sum of the 25 maps each shifted by its tap (r - 2, t - 2), zeros beyond the
  edge (two Concats with zeros, 25 Slices, one Sum). 25 M C multiply-adds per low-resolution pixel instead of
  100 M C (4 x 25 at full resolution): a quarter, exact at the edges with nothing added, but the upsampled tap
  maps (25 M channels at full resolution) are written and read, which pays only where C is large against 25 M /
  4. Measured, AMD EPYC with AVX-512, 2 threads, against the phase form: conv_lr16x (1280 -> 96) -7.7 ms at
  384x384; conv_lr8x (96 -> 32) about 2 ms slower, so it keeps the phase form.
- Phase form (otherwise, C >= 64: conv_lr8x). Each output phase (even or odd row, even or odd column) is a
  convolution of the low-resolution map itself with a 4x4 kernel: per axis, output 2j reads x[j-2..j+1] and
  output 2j+1 reads x[j-1..j+2] (the convolution's 5 taps composed with the upsample's 0.25 / 0.75 pairs).
  4 x 16 multiply-adds per 2x2 outputs instead of 4 x 25: 36% fewer, and the upsampled map is never written.

The phase form is exact at the edges too. Its convolutions read x_e, x padded by one repeated edge sample per side
(Pad, mode edge), and with their own zero padding beyond it they convolve P_e, the unclamped upsample of x_e.
Inside [0, 2n) per axis P_e is the clamped upsample itself; outside it is x[0] at -1, 0.75 x[0] at -2, x[n-1] at 2n
and 0.75 x[n-1] at 2n+1, where the convolution must read zeros. So the two output rows (columns) nearest each edge
get a 1x5 (5x1) convolution of one line of P_e subtracted, with kernels K[1] + 0.75 K[0] and K[0] (and their mirror
at the far edge) of the 5x5 kernel's rows (columns): the rows outside cover every column from -2 to 2n+1, corners
included, and the columns outside only the rows inside. An earlier form padded x with zeros: three lines per edge,
and these edge convolutions read each weight only 24 times (1x24 lines at 384x384), so their time follows their
weight bytes; two lines instead of three measured -0.75 / -1.5 ms at 384 / 512. The phases interleave with
DepthToSpace (DCR); the edge terms reach their rows and columns through Concats with zeros.

Same function in real arithmetic; in fp32 the phase and edge kernels are composed from the 5x5 kernel in float64
and rounded once, and each output is summed in another order, so the export's parity check judges it as it
judges every rewrite (tests/test_upsample_conv.py bounds both forms against float64). Measured (README, "How the
numbers look here"): the phase form for both convolutions, AMD EPYC, 2 threads, against the file without it, at
384 / 512: -1.6 to -2.5 / -6 ms (about 2% / 3%) with AVX-512 kernels, -2.1 / -7.4 ms with AVX2 kernels.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ..graph import GraphView, attr, builders, op_name, view_of
from .base import Pass


def _phase_taps() -> np.ndarray:
    """[phase][t][m]: the weight of x_r[j - 1 + phase + m] (m = 0..3) in upsampled sample 2j + phase - 2 + t, the
    sample tap t of a 5-tap convolution centred on output 2j + phase reads, where x_r is x padded by one sample
    per side and upsampled 2i = 0.25 x_r[i] + 0.75 x_r[i+1], 2i+1 = 0.75 x_r[i+1] + 0.25 x_r[i+2] (whatever the
    padding: x_e below repeats the edge samples). Read off that matrix at an interior j."""
    n, j = 8, 4
    up = np.zeros((2 * n, n + 2), np.float64)
    for i in range(n):
        up[2 * i, i:i + 2] = 0.25, 0.75
        up[2 * i + 1, i + 1:i + 3] = 0.75, 0.25
    taps = np.zeros((2, 5, 4), np.float64)
    for phase in (0, 1):
        p = 2 * j + phase
        taps[phase] = up[p - 2:p + 3, j - 1 + phase:j + 3 + phase]
        assert np.all(taps[phase].sum(1) == 1), "every tap's source lies in the 4 x_r samples"
    return taps


_PHASE_TAPS = _phase_taps()


def phase_kernels(weight: np.ndarray) -> np.ndarray:
    """(M, C, 5, 5) kernel -> (2, 2, M, C, 4, 4) float64: [row phase, column phase] kernels on x_r."""
    return np.einsum("oiht,pha,qtb->pqoiab", weight.astype(np.float64), _PHASE_TAPS, _PHASE_TAPS)


def _is_x2_linear_resize(node: onnx.NodeProto, consts: dict) -> bool:
    if node.op_type != "Resize" or len(node.input) < 3 or attr(node, "mode", b"nearest") != b"linear":
        return False
    if attr(node, "coordinate_transformation_mode", b"half_pixel") not in (b"half_pixel", b"pytorch_half_pixel"):
        return False
    scales = consts.get(node.input[2])
    return scales is not None and scales.size == 4 and list(scales.reshape(-1)) == [1, 1, 2, 2]


def _is_5x5_same_conv(conv: onnx.NodeProto, consts: dict) -> bool:
    w = consts.get(conv.input[1]) if len(conv.input) > 1 else None
    return (conv.op_type == "Conv" and w is not None and w.ndim == 4 and w.shape[2:] == (5, 5)
            and attr(conv, "group", 1) == 1 and list(attr(conv, "strides", [1, 1])) == [1, 1]
            and list(attr(conv, "dilations", [1, 1])) == [1, 1] and list(attr(conv, "pads", [0] * 4)) == [2] * 4
            and attr(conv, "auto_pad", b"NOTSET") in (b"NOTSET", b""))


CONTRACT_FROM = 256  # input channels from which the contracted form replaces the phase form (measured, above)


def rewrite_upsampled_convs(model: onnx.ModelProto, min_in_channels: int = 64, contract_from: int = CONTRACT_FROM,
                            view: GraphView | None = None) -> dict[str, int]:
    """Rewrite, in place, every `Conv5x5_pad2(Resize_linear_x2(x))` (the Resize read by nothing else, x of static
    shape N x C x H x W with H, W >= 4 and C >= `min_in_channels`, float32) into the contracted form above if
    C >= `contract_from`, else into the phase form; return how many of each ({"phased": .., "contracted": ..}).
    Output N x M x 2H x 2W as before; the Conv's output name is kept. Narrower inputs are left alone: the
    phase form's ~20 small nodes cost more than a few channels' multiply-adds save."""
    view = view_of(model, view)
    graph = model.graph
    consts, readers, producer = view.constants(), view.readers(), view.producers()
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    counts = {"phased": 0, "contracted": 0}
    for conv in graph.node:
        resize = producer.get(conv.input[0]) if conv.op_type == "Conv" else None
        if resize is None or not _is_x2_linear_resize(resize, consts) or not _is_5x5_same_conv(conv, consts):
            continue
        if len(readers.get(resize.output[0], [])) != 1:
            continue
        shape = view.static_shape(resize.input[0])  # fully static shapes only
        if not shape or len(shape) != 4 or min(shape[2:]) < 4 or shape[1] < min_in_channels:
            continue
        form = "contracted" if shape[1] >= contract_from else "phased"
        replaced[id(conv)] = (_contracted_nodes if form == "contracted" else _phase_nodes)(
            graph, resize, conv, consts, shape)
        dropped.add(id(resize))
        counts[form] += 1
    if replaced:
        view.replace_nodes(replaced, dropped)
    return counts


def _contracted_nodes(graph: onnx.GraphProto, resize: onnx.NodeProto, conv: onnx.NodeProto, consts: dict,
                      shape: tuple[int, ...]) -> list[onnx.NodeProto]:
    n_batch, c, h, w = shape
    name, x, y = conv.name or conv.output[0], resize.input[0], conv.output[0]
    weight = consts[conv.input[1]].astype(np.float64)
    m = weight.shape[0]
    nodes: list[onnx.NodeProto] = []
    const, node = builders(graph, name, nodes)
    # tap k = 5 r + t as channels k M .. k M + M - 1; the bias rides on the centre tap, which reads no padding
    taps_w = weight.transpose(2, 3, 0, 1).reshape(25 * m, c, 1, 1)
    inputs = [x, const("taps_w", taps_w.astype(np.float32))]
    if len(conv.input) > 2 and conv.input[2]:
        taps_b = np.zeros(25 * m, np.float32)
        taps_b[12 * m:13 * m] = consts[conv.input[2]]
        inputs.append(const("taps_b", taps_b))
    taps = node("Conv", inputs, "taps", kernel_shape=[1, 1])
    attrs = {a.name: helper.get_attribute_value(a) for a in resize.attribute}
    up = node("Resize", [taps, *resize.input[1:3]], "taps_up", **attrs)
    # the convolution's zero padding, by Concats (onnxruntime's Pad took 2.4 ms here, the two Concats 1.4)
    rows = const("zero_rows", np.zeros((n_batch, 25 * m, 2, 2 * w), np.float32))
    cols = const("zero_cols", np.zeros((n_batch, 25 * m, 2 * h + 4, 2), np.float32))
    padded = node("Concat", [cols, node("Concat", [rows, up, rows], "taps_padh", axis=2), cols], "taps_pad", axis=3)
    axes = const("tap_axes", np.array([1, 2, 3], np.int64))
    shifted = [node("Slice", [padded, const(f"tap{5 * r + t}_s", np.array([(5 * r + t) * m, r, t], np.int64)),
                              const(f"tap{5 * r + t}_e", np.array([(5 * r + t + 1) * m, r + 2 * h, t + 2 * w],
                                                                  np.int64)), axes], f"tap{5 * r + t}")
               for r in range(5) for t in range(5)]
    nodes.append(helper.make_node("Sum", shifted, [y], name=op_name(name, "Sum")))
    return nodes


def _phase_nodes(graph: onnx.GraphProto, resize: onnx.NodeProto, conv: onnx.NodeProto, consts: dict,
                 shape: tuple[int, ...]) -> list[onnx.NodeProto]:
    n_batch, _, h, w = shape
    name, x, y = conv.name or conv.output[0], resize.input[0], conv.output[0]
    weight = consts[conv.input[1]].astype(np.float64)
    bias = list(conv.input[2:3])
    m = weight.shape[0]
    nodes: list[onnx.NodeProto] = []
    const, node = builders(graph, name, nodes)

    def sliced(src: str, suffix: str, axis: int, start: int) -> str:
        return node("Slice", [src, const(f"{suffix}_s", np.array([start], np.int64)),
                              const(f"{suffix}_e", np.array([start + 1], np.int64)),
                              const(f"{suffix}_a", np.array([axis], np.int64))], suffix)

    # P_e: the upsample of x_e (x padded by one repeated edge sample per side, zeros beyond), unclamped; it equals
    # the clamped upsample inside [0, 2n) and each phase reads x_e[j - 1 + phase .. j + 2 + phase]
    x_e = node("Pad", [x, const("edge_pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], "x_edge", mode="edge")
    kernels = phase_kernels(weight)
    phases = [node("Conv", [x_e, const(f"kernel{ph}{pw}", kernels[ph, pw].astype(np.float32)), *bias],
                   f"phase{ph}{pw}", kernel_shape=[4, 4], pads=[1 - ph, 1 - pw, ph, pw])
              for ph in (0, 1) for pw in (0, 1)]
    p_conv = node("DepthToSpace", [node("Concat", phases, "phases", axis=1)], "unclamped", blocksize=2, mode="DCR")

    # Z - P_e = -P_e outside [0, 2n): per axis P_e is x[0] at -1, 0.75 x[0] at -2, x[n-1] at 2n, 0.75 x[n-1] at
    # 2n + 1. The rows outside (all columns -2 .. 2n+1, corners included) and the columns outside (rows inside
    # only) are each one line L of P_e and 0.75 L; two output lines per edge read them, through these kernels:
    def edge_kernels(wt: np.ndarray, first: bool) -> np.ndarray:  # wt: tap axis first, M x C x 5 after it
        k = [wt[1] + 0.75 * wt[0], wt[0]] if first else [wt[4], wt[3] + 0.75 * wt[4]]
        return -np.concatenate(k, 0)  # 2M x C x 5, output lines in order

    scales = consts[resize.input[2]].reshape(-1)
    attrs = {a.name: helper.get_attribute_value(a) for a in resize.attribute}

    def edge(suffix: str, axis: int, first: bool) -> str:
        across, length = 5 - axis, 2 * (w if axis == 2 else h)  # across: the line's own axis
        line_scales = scales.copy()
        line_scales[axis] = 1
        if axis == 2:  # a row of P_e over columns -2 .. 2n+1: x_e's row, zeros beyond, upsampled, middle taken
            line = sliced(x_e, f"{suffix}_x", axis, 1 if first else h)
            pad = np.zeros(8, np.int64)
            pad[across], pad[4 + across] = 1, 1
            line = node("Pad", [line, const(f"{suffix}_pads", pad)], f"{suffix}_zp")
            up = node("Resize", [line, resize.input[1], const(f"{suffix}_sc", line_scales.astype(np.float32))],
                      f"{suffix}_upx", **attrs)
            up = node("Slice", [up, const(f"{suffix}_ms", np.array([2], np.int64)),
                                const(f"{suffix}_me", np.array([length + 6], np.int64)),
                                const(f"{suffix}_ma", np.array([across], np.int64))], f"{suffix}_up")
            conv_pads = [0, 0, 0, 0]
        else:  # a column of P_e over rows 0 .. 2n-1: the clamped upsample of x's column, zeros beyond
            line = sliced(x, f"{suffix}_x", axis, 0 if first else w - 1)
            up = node("Resize", [line, resize.input[1], const(f"{suffix}_sc", line_scales.astype(np.float32))],
                      f"{suffix}_up", **attrs)
            conv_pads = [2, 0, 2, 0]
        taps = np.moveaxis(weight, axis, 0)  # 5 x M x C x 5: the taps across the edge first
        kernel = np.expand_dims(edge_kernels(taps, first), axis)
        out = node("Conv", [up, const(f"{suffix}_k", kernel.astype(np.float32))], f"{suffix}_c",
                   kernel_shape=list(kernel.shape[2:]), pads=conv_pads)
        # N x 2M x 1 x 2W (rows) or N x 2M x 2H x 1 (columns) -> N x M x 2 x 2W or N x M x 2H x 2
        split = node("Reshape", [out, const(f"{suffix}_shape", np.array([n_batch, 2, m, length], np.int64))],
                     f"{suffix}_split")
        return node("Transpose", [split], suffix, perm=[0, 2, 1, 3] if axis == 2 else [0, 2, 3, 1])

    zeros_h = const("zeros_h", np.zeros((n_batch, m, 2 * h - 4, 2 * w), np.float32))
    zeros_w = const("zeros_w", np.zeros((n_batch, m, 2 * h, 2 * w - 4), np.float32))
    rows = node("Concat", [edge("top", 2, True), zeros_h, edge("bottom", 2, False)], "rows", axis=2)
    cols = node("Concat", [edge("left", 3, True), zeros_w, edge("right", 3, False)], "cols", axis=3)
    nodes.append(helper.make_node("Add", [node("Add", [p_conv, rows], "plus_rows"), cols], [y],
                                  name=op_name(name, "Add")))
    return nodes


PASS = Pass(name="ort-upsampled-conv", profiles=frozenset({"onnxruntime"}),
            apply=lambda model, ctx: rewrite_upsampled_convs(model, view=ctx.view),
            exact="the channel sums commute with the per-channel upsample; phase and edge kernels composed in "
                  "float64 (same function in real arithmetic)")

"""export --runtime onnxruntime (export/onnx/passes/ort_upsampled_conv.py): a 5x5 convolution of a bilinear x2 upsample as four
phase convolutions plus edge terms, or contracted to its 25 tap maps before the upsample, computes the same
function, edges included, within fp32 rounding."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from matteconv.backends import ort_session
from matteconv.export.onnx.passes.ort_upsampled_conv import _PHASE_TAPS, CONTRACT_FROM, rewrite_upsampled_convs

EPS32 = float(np.finfo(np.float32).eps)


def _graph(n: int, c: int, m: int, h: int, w: int, mode: str = "pytorch_half_pixel", pads=(2, 2, 2, 2),
           kernel: int = 5, bias: bool = True, seed: int = 0):
    """Resize(linear x2) -> Conv(kernel, pads), MODNet's conv_lr16x pattern; returns (model, x, W, B)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    weight = rng.normal(size=(m, c, kernel, kernel)).astype(np.float32)
    b = rng.normal(size=m).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(b, "B"),
             numpy_helper.from_array(np.array([], np.float32), "roi"),
             numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    nodes = [helper.make_node("Resize", ["x", "roi", "scales"], ["u"], name="up", mode="linear",
                              coordinate_transformation_mode=mode),
             helper.make_node("Conv", ["u", "W", "B"] if bias else ["u", "W"], ["y"], name="conv",
                              kernel_shape=[kernel, kernel], pads=list(pads))]
    out_hw = [2 * h + pads[0] + pads[2] - kernel + 1, 2 * w + pads[1] + pads[3] - kernel + 1]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, m, *out_hw])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), x, weight, (b if bias else None)


def _float64(x, weight, b) -> np.ndarray:
    """PyTorch's bilinear x2 (align_corners=False: the clamped half-pixel upsample) and conv2d, in float64."""
    up = F.interpolate(torch.from_numpy(x).double(), scale_factor=2, mode="bilinear", align_corners=False)
    bias = None if b is None else torch.from_numpy(b).double()
    return F.conv2d(up, torch.from_numpy(weight).double(), bias, padding=2).numpy()


def test_phase_taps_are_the_upsample_composed_with_each_tap():
    """Per phase, every 5-tap row sums to 1 (each upsampled sample is a convex pair) and reads 2 of the 4 x_r."""
    assert _PHASE_TAPS.shape == (2, 5, 4)
    np.testing.assert_array_equal(_PHASE_TAPS.sum(2), np.ones((2, 5)))
    np.testing.assert_array_equal((_PHASE_TAPS > 0).sum(2), np.full((2, 5), 2))
    # output 2j: its centre tap reads upsampled 2j = 0.25 x[j-1] + 0.75 x[j] (x_r[j] and x_r[j+1]: m = 1, 2)
    np.testing.assert_array_equal(_PHASE_TAPS[0, 2], [0, 0.25, 0.75, 0])


@pytest.mark.parametrize("n, c, m, h, w, mode, bias", [
    (1, 3, 2, 4, 4, "pytorch_half_pixel", True),    # the smallest map taken: every output is near an edge
    (2, 8, 5, 12, 12, "half_pixel", True),          # batch 2, as --runtime onnxruntime writes the Resize
    (1, 4, 3, 5, 7, "pytorch_half_pixel", False),   # odd, unequal sides, no bias
    (2, 6, 4, 16, 9, "half_pixel", True)])
@pytest.mark.parametrize("form", ["phased", "contracted"])
def test_rewritten_form_is_the_upsampled_convolution(n, c, m, h, w, mode, bias, form):
    model, x, weight, b = _graph(n, c, m, h, w, mode, bias=bias)
    before = ort_session(model.SerializeToString()).run(None, {"x": x})[0]
    contract_from = 1 if form == "contracted" else 10**6
    expected = {"phased": 0, "contracted": 0, form: 1}
    assert rewrite_upsampled_convs(model, min_in_channels=1, contract_from=contract_from) == expected
    onnx.checker.check_model(model, full_check=True)
    ops = [node.op_type for node in model.graph.node]
    if form == "phased":
        assert "DepthToSpace" in ops and ops.count("Resize") == 4  # the full-size upsample is gone; 4 edge lines
    else:  # one 1x1 convolution to the 25 tap maps, their upsample, 25 shifts summed
        assert ops.count("Conv") == 1 and ops.count("Resize") == 1 and ops.count("Slice") == 25
        assert ops[-1] == "Sum"
    after = ort_session(model.SerializeToString()).run(None, {"x": x})[0]
    ref = _float64(x, weight, b)
    # each output sums at most 25 C upsampled products (the phase form: 16 C, plus 5 C per edge term; the
    # contracted form: C per tap map, 2 x 2 upsample weights, then 25 maps); fp32 rounding of the sums, of the
    # composed kernels and of the inputs: a few eps times the sum of magnitudes
    magnitude = _float64(np.abs(x), np.abs(weight), None if b is None else np.abs(b))  # the upsample's weights are >= 0
    bound = (25 * c + 8) * EPS32 * magnitude
    assert after.shape == ref.shape
    assert np.all(np.abs(after - ref) <= bound)
    assert np.all(np.abs(before - ref) <= bound)  # the bound holds for onnxruntime's own path too


@pytest.mark.parametrize("change", ["kernel3", "pads1", "small", "narrow", "shared"])
def test_left_alone_where_the_pattern_or_the_gain_is_missing(change):
    if change == "kernel3":
        model = _graph(1, 64, 4, 8, 8, kernel=3, pads=(1, 1, 1, 1))[0]
    elif change == "pads1":
        model = _graph(1, 64, 4, 8, 8, pads=(1, 1, 1, 1))[0]
    elif change == "small":  # a 3x3 map: no interior to gain on
        model = _graph(1, 64, 4, 3, 3)[0]
    elif change == "narrow":  # fewer input channels than the rewrite's cost pays for
        model = _graph(1, 8, 4, 8, 8)[0]
    else:  # the upsample is read by something else too
        model = _graph(1, 64, 4, 8, 8)[0]
        model.graph.node.append(helper.make_node("Relu", ["u"], ["spy"], name="spy"))
        model.graph.output.append(helper.make_tensor_value_info("spy", TensorProto.FLOAT, [1, 64, 16, 16]))
    before = [n.op_type for n in model.graph.node]
    assert rewrite_upsampled_convs(model) == {"phased": 0, "contracted": 0}
    assert [n.op_type for n in model.graph.node] == before


@pytest.mark.parametrize("c, form", [(CONTRACT_FROM - 1, "phased"), (CONTRACT_FROM, "contracted")])
def test_wide_inputs_are_contracted_narrower_ones_phased(c, form):
    """MODNet's conv_lr16x (1280 channels in) takes the contracted form, conv_lr8x (96) the phase form."""
    assert 96 < CONTRACT_FROM <= 1280
    model = _graph(1, c, 2, 4, 4)[0]
    assert rewrite_upsampled_convs(model) == {"phased": 0, "contracted": 0, form: 1}

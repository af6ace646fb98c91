"""export/onnx/passes/ort_matmul_head.py: a 1x1 convolution to one channel becomes Reshape -> MatMul -> Reshape where its input is
narrower than an NCHWc block, computes the same within fp32 rounding, and keeps the IBNorm halves it reads in NCHW."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from matteconv.backends import ort_session
from matteconv.export.onnx.graph import node_readers
from matteconv.export.onnx.passes.ort_matmul_head import one_channel_heads_as_matmul, read_only_by_heads
from matteconv.export.onnx.passes.ort_blocked_in_relu import blocked_instance_norm_relus
from matteconv.export.onnx.passes.ort_select_ibnorm import select_ibnorm_halves

EPS32 = float(np.finfo(np.float32).eps)
RNG = np.random.default_rng(7)


def _head_graph(c: int, out_channels: int = 1, kernel: int = 1, bias: bool = True, n: int = 1,
                h: int = 12, w: int = 10) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """x (n x c x h x w) -> Conv(kernel x kernel, `out_channels`) -> Sigmoid: MODNet's alpha head."""
    weight = RNG.normal(0, 0.5, (out_channels, c, kernel, kernel)).astype(np.float32)
    b = RNG.normal(0, 0.5, out_channels).astype(np.float32)
    inits = [numpy_helper.from_array(weight, "w")] + ([numpy_helper.from_array(b, "b")] if bias else [])
    conv = helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["z"], name="/head/Conv",
                            pads=[kernel // 2] * 4)
    graph = helper.make_graph(
        [conv, helper.make_node("Sigmoid", ["z"], ["alpha"])], "head",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [n, c, h, w])],
        [helper.make_tensor_value_info("alpha", onnx.TensorProto.FLOAT, [n, out_channels, h, w])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), weight, (b if bias else 0 * b)


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort_session(model.SerializeToString()).run(None, {"x": x})[0]


@pytest.mark.parametrize("n, bias", [(1, True), (2, True), (1, False)])
def test_head_becomes_a_matmul_and_computes_the_same(n, bias):
    c = 8
    model, weight, b = _head_graph(c, bias=bias, n=n)
    x = RNG.normal(0, 2, (n, c, 12, 10)).astype(np.float32)
    before = _run(model, x)
    assert one_channel_heads_as_matmul(model, block=16) == 1
    assert [nd.op_type for nd in model.graph.node] == ["Reshape", "MatMul"] + ["Add"] * bias + ["Reshape", "Sigmoid"]
    after = _run(model, x)
    assert after.shape == before.shape == (n, 1, 12, 10)
    # float64 reference of the logit; both fp32 sums of c products (plus the bias) lie within
    # (c + 1) * eps * sum|w x| + |b| of it, and the sigmoid's slope is at most 1/4
    products = weight.reshape(1, c, 1, 1).astype(np.float64) * x.astype(np.float64)
    logit = products.sum(1, keepdims=True) + np.float64(b[0])
    bound = 0.25 * (c + 1) * EPS32 * (np.abs(products).sum(1, keepdims=True) + abs(float(b[0]))) + 2 * EPS32
    exact = 1 / (1 + np.exp(-logit))
    assert np.all(np.abs(after - exact) <= bound)
    assert np.all(np.abs(before - exact) <= bound)


@pytest.mark.parametrize("c, block, out_channels, kernel, rewritten", [
    (8, 16, 1, 1, 1),   # MODNet's 8-channel half on AVX-512: read in NCHW anyway
    (8, 8, 1, 1, 0),    # AVX2: the 8-channel half is a whole block, read blocked
    (16, 16, 1, 1, 0),  # a block or more of input channels
    (8, 16, 2, 1, 0),   # two output channels: not a one-channel head
    (8, 16, 1, 3, 0),   # 3x3: not a 1x1 head
    (8, 1, 1, 1, 0),    # no NCHWc at all (block 1): nothing is padded
])
def test_only_one_channel_1x1_heads_narrower_than_a_block(c, block, out_channels, kernel, rewritten):
    model, _, _ = _head_graph(c, out_channels, kernel)
    assert one_channel_heads_as_matmul(model, block=block) == rewritten
    assert ("MatMul" in [nd.op_type for nd in model.graph.node]) == bool(rewritten)


def _ibnorm_head_graph(head: str) -> onnx.ModelProto:
    """Conv -> IBNorm (8 + 8 channels: Slice -> BatchNorm -> Relu | Slice -> centred InstanceNorm -> Relu) -> a 1x1
    head to one channel per half ("head") or a 3x3 Conv per half ("conv"): conv_f's shape after the Concat split."""
    c, half = 16, 8
    k = 1 if head == "head" else 3
    o = 1 if head == "head" else 16
    consts = {
        "w0": RNG.normal(0, 0.3, (c, 3, 3, 3)), "gamma": RNG.uniform(0.5, 2, half), "beta": RNG.normal(0, 1, half),
        "mean": RNG.normal(0, 1, half), "var": RNG.uniform(0.2, 3, half), "in_scale": np.ones(half),
        "in_bias": np.zeros(half), "wa": RNG.normal(0, 0.3, (o, half, k, k)), "wb": RNG.normal(0, 0.3, (o, half, k, k)),
    }
    inits = [numpy_helper.from_array(v.astype(np.float32), name) for name, v in consts.items()]
    inits += [numpy_helper.from_array(np.array([v], np.int64), name)
              for name, v in (("s0", 0), ("s1", half), ("s2", c), ("ax", 1))]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["y"], name="/f/Conv", pads=[1] * 4),
        helper.make_node("Slice", ["y", "s0", "s1", "ax"], ["ya"], name="/f/ibn/Slice"),
        helper.make_node("BatchNormalization", ["ya", "gamma", "beta", "mean", "var"], ["bn"], name="/f/ibn/bnorm/BN"),
        helper.make_node("Slice", ["y", "s1", "s2", "ax"], ["yb"], name="/f/ibn/Slice_1"),
        helper.make_node("ReduceMean", ["yb"], ["m"], name="/f/ibn/inorm/ReduceMean_centre", axes=[2, 3]),
        helper.make_node("Sub", ["yb", "m"], ["yc"], name="/f/ibn/inorm/Sub_centre"),
        helper.make_node("InstanceNormalization", ["yc", "in_scale", "in_bias"], ["in"], name="/f/ibn/inorm/IN"),
        helper.make_node("Relu", ["bn"], ["ra"], name="/f/Relu_in0"),
        helper.make_node("Relu", ["in"], ["rb"], name="/f/Relu_in1"),
        helper.make_node("Conv", ["ra", "wa"], ["za"], name="/head/Conv_part0", pads=[k // 2] * 4),
        helper.make_node("Conv", ["rb", "wb"], ["zb"], name="/head/Conv_part1", pads=[k // 2] * 4),
        helper.make_node("Add", ["za", "zb"], ["alpha"], name="/head/Conv_sum1"),
    ]
    graph = helper.make_graph(nodes, "ibnorm_head",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 16, 12])],
                              [helper.make_tensor_value_info("alpha", onnx.TensorProto.FLOAT, [1, o, 16, 12])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def test_halves_read_only_by_heads_stay_in_nchw():
    """After the heads become MatMuls, neither half is selected into the blocked layout (both Slices stay) and the
    InstanceNorm ReLU gets no identity convolution; the same halves before a 3x3 convolution are selected."""
    x = RNG.normal(0, 1, (1, 3, 16, 12)).astype(np.float32)
    model = _ibnorm_head_graph("head")
    before = _run(model, x)
    assert one_channel_heads_as_matmul(model, block=16) == 2
    readers = node_readers(model.graph)
    assert read_only_by_heads("ya", readers) and read_only_by_heads("yb", readers) and read_only_by_heads("rb", readers)
    assert not read_only_by_heads("y", readers)  # the Slices themselves are no head ops
    assert select_ibnorm_halves(model) == 0
    assert blocked_instance_norm_relus(model, block=8) == 0
    assert [nd.op_type for nd in model.graph.node].count("Slice") == 2
    np.testing.assert_allclose(_run(model, x), before, rtol=0, atol=64 * EPS32 * float(np.abs(before).max() + 1))

    model = _ibnorm_head_graph("conv")
    assert one_channel_heads_as_matmul(model, block=16) == 0
    assert not read_only_by_heads("ya", node_readers(model.graph))
    assert select_ibnorm_halves(model) == 2

"""export --runtime onnxruntime (the ort-* passes, export/onnx/passes): each rewrite computes what the graph computed before, and the
rewritten IBNorm and upsample really run in onnxruntime's blocked (NCHWc) layout; atc's path refuses the file."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from matteconv.ascend.command import inspect_onnx
from matteconv.backends import ort_session
from matteconv.cli import app
from matteconv.errors import MatteconvError
from matteconv.export.onnx.passes.centre_instance_norm import centre_instance_norms
from matteconv.export.onnx.graph import GraphView, name_problems
from matteconv.export.onnx.ort_block import nchwc_block_size
from matteconv.export.onnx.passes import REGISTRY, PassContext, run_passes
from matteconv.export.onnx.passes.ort_blocked_in_relu import blocked_instance_norm_relus
from matteconv.export.onnx.passes.ort_half_pixel import half_pixel_upsamples
from matteconv.export.onnx.passes.ort_select_ibnorm import select_ibnorm_halves
from matteconv.export.onnx import export_onnx
from matteconv.model.checkpoint import load_checkpoint
from matteconv.verify.fp16_stages import fp16_stage
from matteconv.verify.stages import Stage

EPS32 = float(np.finfo(np.float32).eps)
C, H, W = 32, 24, 20  # IBNorm halves of 16 channels: whole NCHWc blocks on AVX2 (8) and AVX-512 (16)


def _ibnorm_graph(upsample: bool = True) -> onnx.ModelProto:
    """Conv -> IBNorm (Slice -> BatchNormalization | Slice -> centred InstanceNormalization) -> ReLUs -> Concat
    -> bilinear x2 Resize (pytorch_half_pixel) -> Conv: MODNet's pattern as export_onnx writes it."""
    rng = np.random.default_rng(0)
    half = C // 2
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.2, (C, C, 3, 3)).astype(np.float32), "w0"),
        numpy_helper.from_array(rng.normal(0, 0.1, C).astype(np.float32), "b0"),
        numpy_helper.from_array(rng.uniform(0.5, 2, half).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.normal(0, 1, half).astype(np.float32), "beta"),
        numpy_helper.from_array(rng.normal(0, 1, half).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.2, 3, half).astype(np.float32), "var"),
        numpy_helper.from_array(np.ones(C - half, np.float32), "in_scale"),
        numpy_helper.from_array(np.zeros(C - half, np.float32), "in_bias"),
        numpy_helper.from_array(rng.normal(0, 0.2, (16, C, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([half], np.int64), "s1"),
        numpy_helper.from_array(np.array([C], np.int64), "s2"),
        numpy_helper.from_array(np.array([1], np.int64), "ax"),
        numpy_helper.from_array(np.array([], np.float32), "roi"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "up2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c"], name="/blk/conv/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Slice", ["c", "s0", "s1", "ax"], ["bn_in"], name="/blk/ibn/Slice"),
        helper.make_node("BatchNormalization", ["bn_in", "gamma", "beta", "mean", "var"], ["bn"],
                         name="/blk/ibn/bnorm/BatchNormalization", epsilon=1e-5),
        helper.make_node("Slice", ["c", "s1", "s2", "ax"], ["in_in"], name="/blk/ibn/Slice_1"),
        helper.make_node("InstanceNormalization", ["in_in", "in_scale", "in_bias"], ["inorm"],
                         name="/blk/ibn/inorm/InstanceNormalization", epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r0"], name="/blk/relu/Relu_in0"),
        helper.make_node("Relu", ["inorm"], ["r1"], name="/blk/relu/Relu_in1"),
        helper.make_node("Concat", ["r0", "r1"], ["ib"], name="/blk/relu/Relu_Concat", axis=1),
    ]
    last = "ib"
    if upsample:
        nodes.append(helper.make_node("Resize", ["ib", "roi", "up2"], ["up"], name="/blk/Resize", mode="linear",
                                      coordinate_transformation_mode="pytorch_half_pixel"))
        last = "up"
    nodes.append(helper.make_node("Conv", [last, "w1"], ["y"], name="/next/Conv", pads=[1, 1, 1, 1]))
    k = 2 if upsample else 1
    graph = helper.make_graph(nodes, "ibnorm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, k * H, k * W])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    centre_instance_norms(model)
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return ort_session(model.SerializeToString()).run(None, {"x": x})[0]


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _optimised(model: onnx.ModelProto, tmp_path) -> onnx.ModelProto:
    """The graph onnxruntime actually runs (its own optimised graph, saved)."""
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return onnx.load(str(tmp_path / "optimised.onnx"))


def _optimised_ops(model: onnx.ModelProto, tmp_path) -> list[tuple[str, str]]:
    """(domain, op_type) of the graph onnxruntime actually runs."""
    return [(n.domain, n.op_type) for n in _optimised(model, tmp_path).graph.node]


@pytest.fixture
def x() -> np.ndarray:
    # a large common offset in every channel: the case the centred InstanceNorm exists for
    return (np.random.default_rng(1).normal(0, 1, (1, C, H, W)) + 20).astype(np.float32)


def _tolerance(ref: np.ndarray, terms: int) -> float:
    """fp32 rounding of `terms` products summed in another order, scaled by the output's size."""
    return 4 * terms * EPS32 * float(np.abs(ref).max())


def test_selectors_replace_the_slices_and_fold_the_batchnorm(x):
    model = _ibnorm_graph(upsample=False)
    before = _run(model, x)
    assert select_ibnorm_halves(model) == 2
    assert "Slice" not in _ops(model) and "BatchNormalization" not in _ops(model)
    selectors = [n for n in model.graph.node if n.name.endswith("_select_Conv")]
    assert [n.name for n in selectors] == ["/blk/ibn/bnorm/BatchNormalization_select_Conv",
                                           "/blk/ibn/Slice_1_select_Conv"]
    assert [n.output[0] for n in selectors] == ["bn", "in_in"]  # the tensors the replaced nodes wrote
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    sel_in = w["/blk/ibn/Slice_1_select.weight"][:, :, 0, 0]
    assert np.array_equal(sel_in, np.eye(C, dtype=np.float32)[C // 2:])  # picks channels 16..31, times 1
    np.testing.assert_allclose(_run(model, x), before, rtol=0, atol=_tolerance(before, 9 * C))


def test_the_batchnorm_fold_is_onnx_batchnorm_in_float64():
    model = _ibnorm_graph(upsample=False)
    p = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    select_ibnorm_halves(model)
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    name = "/blk/ibn/bnorm/BatchNormalization_select"
    scale = p["gamma"] / np.sqrt(p["var"] + np.float64(np.float32(1e-5)))
    np.testing.assert_array_equal(np.diagonal(w[f"{name}.weight"][:, :C // 2, 0, 0]), scale.astype(np.float32))
    assert not w[f"{name}.weight"][:, C // 2:].any()
    np.testing.assert_array_equal(w[f"{name}.bias"], (p["beta"] - p["mean"] * scale).astype(np.float32))


def test_a_slice_read_by_anything_else_is_left_alone(x):
    model = _ibnorm_graph(upsample=False)
    extra = helper.make_node("Relu", ["in_in"], ["spy"], name="/spy")
    model.graph.node.append(extra)
    model.graph.output.append(helper.make_tensor_value_info("spy", TensorProto.FLOAT, None))
    assert select_ibnorm_halves(model) == 1  # only the BatchNorm half
    assert _ops(model).count("Slice") == 1


def test_instance_norm_relu_reads_through_a_depthwise_identity(x):
    model = _ibnorm_graph(upsample=False)
    before = _run(model, x)
    assert blocked_instance_norm_relus(model) == 1
    conv = next(n for n in model.graph.node if n.name == "/blk/relu/Relu_in1_blocked_Conv")  # the ReLU's scope
    assert conv.op_type == "Conv" and conv.input[0] == "inorm"
    assert next(a.i for a in conv.attribute if a.name == "group") == C - C // 2
    relu = next(n for n in model.graph.node if n.name == "/blk/relu/Relu_in1")
    assert relu.input[0] == conv.output[0] and relu.output[0] == "r1"
    np.testing.assert_allclose(_run(model, x), before, rtol=0, atol=_tolerance(before, 9 * C))


@pytest.mark.parametrize("block, rewritten", [(8, 1), (16, 1), (32, 0)])
def test_an_instance_norm_half_narrower_than_a_block_stays_in_nchw(block, rewritten):
    """Halves of 16 channels: blocked for CPUs with 8- or 16-channel blocks, left to their NCHW reader at 32."""
    model = _ibnorm_graph(upsample=False)
    assert blocked_instance_norm_relus(model, block) == rewritten
    assert any(n.name.endswith("_blocked_Conv") for n in model.graph.node) == bool(rewritten)


def test_the_block_size_is_the_one_onnxruntime_pads_a_convolution_to(tmp_path):
    """The probe agrees with what onnxruntime does to a real convolution: a 1x1 Conv 24 -> 24 is stored padded
    to whole blocks in the optimised graph (24 on 8-channel blocks, 32 on 16-channel ones)."""
    block = nchwc_block_size()
    assert block in (1, 8, 16)
    w = numpy_helper.from_array(np.ones((24, 24, 1, 1), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 24, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 8, 8])], [w])
    optimised = _optimised(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), tmp_path)
    dims = [i.dims[0] for i in optimised.graph.initializer if len(i.dims) == 4]
    assert dims == [24 if block == 1 else -(-24 // block) * block]


@pytest.mark.parametrize("scales, rewritten", [([1, 1, 2, 2], 1), ([1, 1, 4, 1], 1), ([1, 1, 0.5, 0.5], 0),
                                               ([1, 1, 1.5, 1.5], 0)])
def test_half_pixel_only_where_no_output_side_can_be_one(scales, rewritten):
    model = _ibnorm_graph()
    next(i for i in model.graph.initializer if i.name == "up2").CopyFrom(
        numpy_helper.from_array(np.array(scales, np.float32), "up2"))
    assert half_pixel_upsamples(model) == rewritten
    mode = next(a.s for n in model.graph.node if n.op_type == "Resize" for a in n.attribute
                if a.name == "coordinate_transformation_mode")
    assert mode == (b"half_pixel" if rewritten else b"pytorch_half_pixel")


def test_tuned_graph_computes_the_same_and_runs_blocked(x, tmp_path):
    model = _ibnorm_graph()
    before = _run(model, x)
    plain_ops = _optimised_ops(model, tmp_path)
    assert ("", "Slice") in plain_ops and ("", "Resize") in plain_ops  # what the tuning is for
    ort_only = [p for p in REGISTRY if p.profiles == {"onnxruntime"}]
    assert run_passes(model, ort_only, PassContext(GraphView(model), block_size=16)) == {
        "ort-matmul-head": 0, "ort-select-ibnorm": 2, "ort-blocked-in-relu": 1, "ort-half-pixel": 1,
        "ort-upsampled-conv": {"phased": 0, "contracted": 0}}
    np.testing.assert_allclose(_run(model, x), before, rtol=0, atol=_tolerance(before, 9 * C))
    ops = _optimised_ops(model, tmp_path)
    assert ("com.microsoft.nchwc", "Upsample") in ops and ("", "Resize") not in ops
    assert ("", "Slice") not in ops and ("", "BatchNormalization") not in ops
    # only the InstanceNorm half leaves the blocked layout: one reorder out, one back in
    assert ops.count(("com.microsoft.nchwc", "ReorderOutput")) == 2  # the InstanceNorm half, the graph output
    assert ops.count(("com.microsoft.nchwc", "ReorderInput")) == 2  # the graph input, the InstanceNorm half


def test_export_for_onnxruntime_passes_parity_and_atc_refuses_it(ref3_ckpt, tmp_path):
    out = tmp_path / "ort.onnx"
    res = export_onnx(load_checkpoint(ref3_ckpt), out, (128, 128), runtime="onnxruntime")
    assert res.runtime == "onnxruntime"
    block = nchwc_block_size()
    # MODNet: 16 IBNorms, 6 bilinear x2 upsamples, 2 of them read by a 5x5 convolution alone (1280 channels in at
    # 1/32: contracted; 96 at 1/16: phases); every InstanceNorm half has 16 channels or more but conv_f's (8), which only the alpha
    # head reads: with 16-channel blocks its two parts become MatMuls and its two halves are not selected
    heads = 2 if block > 8 else 0
    assert {k: v for k, v in res.passes.items() if k.startswith("ort-")} == {
        "ort-matmul-head": heads, "ort-select-ibnorm": 32 - heads, "ort-blocked-in-relu": 16 - (block > 8),
        "ort-half-pixel": 6, "ort-upsampled-conv": {"phased": 1, "contracted": 1}}
    assert res.nchwc_block == block
    assert res.max_abs_diff <= res.parity_tolerance
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["runtime"] == "onnxruntime" and meta["nchwc_block"] == str(block)
    assert json.loads(meta["passes"]) == res.passes  # every pass run, in order, with its count
    assert not name_problems(onnx.load(str(out)).graph)  # unique names with scope and op type (issue 34)
    problems = inspect_onnx(out).problems
    assert len(problems) == 1 and "--runtime onnxruntime" in problems[0] and "--runtime any" in problems[0]
    r = CliRunner().invoke(app, ["om", str(out), "-o", str(tmp_path / "m"), "--dry-run"])
    assert r.exit_code == 2 and "export again with --runtime any for atc" in r.output
    assert not list(tmp_path.glob("m*"))
    predicted = fp16_stage(Stage("onnx", str(out)))  # verify --fp16: no .om can be built from it to predict
    assert predicted.skip and "--runtime onnxruntime" in predicted.skip and predicted.run is None


def test_unknown_runtime_is_refused_before_any_work(ref3_ckpt, tmp_path):
    with pytest.raises(MatteconvError, match="runtime 'tensorrt' not supported"):
        export_onnx(load_checkpoint(ref3_ckpt), tmp_path / "x.onnx", (64, 64), runtime="tensorrt")
    r = CliRunner().invoke(app, ["export", str(ref3_ckpt), "-o", str(tmp_path / "y.onnx"), "--runtime", "tensorrt"])
    assert r.exit_code != 0 and "--runtime tensorrt" in r.output
    assert not list(tmp_path.glob("*.onnx"))

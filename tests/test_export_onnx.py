"""ONNX export: Ascend-safe Resize modes, the opset actually written, provenance, parity on real photos."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from matteconv import preprocess, samples
from matteconv.backends import OnnxBackend
from matteconv.errors import MatteconvError
from matteconv.export.onnx.exporter import check_ascend_safe, export_onnx
from matteconv.export.onnx.passes.fix_resize_modes import fix_resize_modes
from matteconv.model.checkpoint import load_checkpoint
from matteconv.verify.metrics import max_abs, mean_abs


def resize_modes(path):
    m = onnx.load(str(path))
    return [next(a.s.decode() for a in n.attribute if a.name == "coordinate_transformation_mode")
            for n in m.graph.node if n.op_type == "Resize"], m


def test_default_export_is_ascend_safe_with_provenance(ref3_onnx, ref3_ckpt):
    modes, m = resize_modes(ref3_onnx)
    assert len(modes) == 8 and set(modes) == {"pytorch_half_pixel"}  # 7 x2 upsamples (one shared) + 2 downsamples
    assert check_ascend_safe(m, "x") == 11
    meta = {p.key: p.value for p in m.metadata_props}
    ck = load_checkpoint(ref3_ckpt)
    assert meta["checkpoint_sha256"] == ck.sha256 and meta["weights_sha256"] == ck.weights_sha256
    assert meta["input_size"] == "512x512" and json.loads(meta["preprocessing"])["mean"] == 127.5
    assert len(m.graph.node) < 330  # onnxsim ran (the raw export has ~480 nodes; ours 309 after the rewrites)


def test_half_pixel_is_rewritten_and_refused_unfixed():
    node = onnx.helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear",
                                 coordinate_transformation_mode="half_pixel", name="r")
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", 1, [1, 1, 4, 4])],
                                   [onnx.helper.make_tensor_value_info("y", 1, [1, 1, 8, 8])],
                                   [onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    with pytest.raises(MatteconvError, match="half_pixel; Ascend computes that as asymmetric"):
        check_ascend_safe(model, "m.onnx")
    assert fix_resize_modes(model) == 1
    assert check_ascend_safe(model, "m.onnx") == 13


@pytest.mark.parametrize("opset", [pytest.param(13, marks=pytest.mark.slow), 17])  # 13: tier 2 (issue 38)
def test_newer_opsets_written_as_asked(opset, ref3_ckpt, tmp_path):
    out = tmp_path / f"m{opset}.onnx"
    res = export_onnx(load_checkpoint(ref3_ckpt), out, (128, 128), opset=opset)
    modes, m = resize_modes(out)
    assert res.opset == opset and check_ascend_safe(m, "x") == opset
    assert modes and set(modes) == {"pytorch_half_pixel"}


@pytest.mark.slow
def test_non_square_official_policy_parity(ref3_ckpt, ref3_model, tmp_path):
    """Coffee (400x600) under the MODNet demo rule -> 384x576; ONNX within fp32 tolerance of float64 torch."""
    prep = preprocess.prepare(samples.photos()["coffee"], "official")
    assert prep.tensor.shape[-2:] == (384, 576)
    out = tmp_path / "wide.onnx"
    export_onnx(load_checkpoint(ref3_ckpt), out, (384, 576))
    got = OnnxBackend(out).run(prep.tensor)[0, 0]
    with torch.no_grad():
        gold = ref3_model.double()(torch.from_numpy(prep.tensor.astype(np.float64))).numpy()[0, 0]
    ref3_model.float()
    assert max_abs(got, gold) <= 1e-3 and mean_abs(got, gold) <= 5e-5
    restored = preprocess.restore(got, prep)
    assert restored.shape == (400, 600)


def test_split_inputs_match_single_input(ref4_ckpt, tmp_path):
    ck = load_checkpoint(ref4_ckpt)
    a = export_onnx(ck, tmp_path / "one.onnx", (128, 128))
    b = export_onnx(ck, tmp_path / "two.onnx", (128, 128), split_inputs=True)
    assert a.input_names == ["input"] and b.input_names == ["image", "prev_alpha"]
    x = preprocess.prepare(samples.photos()["astronaut"], "device", (128, 128)).tensor
    prev = samples.soft_ellipse(128, 128, 70, 64, 60, 40).astype(np.float32)[None, None]
    x4 = np.concatenate([x, prev], axis=1)
    one, two = OnnxBackend(a.path).run(x4), OnnxBackend(b.path).run(x4)
    assert np.abs(one - two).max() <= 1e-5
    assert np.abs(one - OnnxBackend(a.path).run(np.concatenate([x, 0 * prev], axis=1))).max() > 1e-3


@pytest.mark.slow
def test_dynamic_export_runs_other_sizes(ref3_ckpt, tmp_path):
    out = tmp_path / "dyn.onnx"
    export_onnx(load_checkpoint(ref3_ckpt), out, (128, 128), dynamic=True)
    b = OnnxBackend(out)
    assert b.size is None
    assert b.run(np.zeros((1, 3, 64, 96), np.float32)).shape == (1, 1, 64, 96)


def test_bad_size_and_parity_failure_leave_nothing(ref3_ckpt, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="multiples of 32"):
        preprocess.parse_size("500")
    from matteconv.export import parity

    monkeypatch.setattr(parity, "PARITY_MAX", 0.0)  # any fp32 difference now counts, at any size
    monkeypatch.setattr(parity, "FLOOR_FACTOR", 0.0)
    out = tmp_path / "never.onnx"
    with pytest.raises(MatteconvError, match="differs from PyTorch"):
        export_onnx(load_checkpoint(ref3_ckpt), out, (64, 64))
    assert list(tmp_path.iterdir()) == []


def _concat_fed_convs(model):
    producer = {o: n.op_type for n in model.graph.node for o in n.output}
    return sum(n.op_type == "Conv" and producer.get(n.input[0]) == "Concat" for n in model.graph.node)


def test_concat_convs_are_split_with_the_same_numbers(ref3_onnx, ref3_onnx_128, ref3_ckpt, tmp_path):
    """The six Conv(Concat(features, image)) of the HR/fusion branches, and the six convolutions that read an
    IBNorm's Concat once its ReLU moved in front of it (18 in all, some parts reading a Concat themselves), become
    per-input Convs + Add."""
    split = onnx.load(str(ref3_onnx))
    assert _concat_fed_convs(split) == 0
    meta = {p.key: p.value for p in split.metadata_props}
    counts = json.loads(meta["passes"])
    assert counts["split-concat-conv"] == 18 and counts["relu-before-concat"] == 16
    # the numbers at 128 (the shared export; a second 512 export and its float64 parity cost 20 s of tier 1)
    kept = export_onnx(load_checkpoint(ref3_ckpt), tmp_path / "kept.onnx", (128, 128),
                       skip=("relu-before-concat", "split-concat-conv"))
    assert "split-concat-conv" not in kept.passes and _concat_fed_convs(onnx.load(str(kept.path))) == 6
    x = preprocess.prepare(samples.photos()["astronaut"], "device", (128, 128)).tensor
    a, b = OnnxBackend(ref3_onnx_128).run(x), OnnxBackend(kept.path).run(x)
    assert 0 < np.abs(a - b).max() <= 2e-5  # the same sum in another order: fp32 rounding only


def test_split_concat_conv_on_a_three_way_concat():
    """Unit case: 3 inputs of 2, 5 and 1 channels, bias, padding and stride; exact against numpy-built weights."""
    from onnx import helper, numpy_helper

    from matteconv.export.onnx.passes.split_concat_conv import split_concat_convs

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 8, 3, 3)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    ins = [helper.make_tensor_value_info(f"x{i}", 1, [1, c, 9, 9]) for i, c in enumerate((2, 5, 1))]
    nodes = [helper.make_node("Concat", ["x0", "x1", "x2"], ["cat"], axis=1, name="cat"),
             helper.make_node("Conv", ["cat", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2], name="/m/Conv")]
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", 1, [1, 4, 5, 5])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    feeds = {f"x{i}": rng.normal(size=(1, c, 9, 9)).astype(np.float32) for i, c in enumerate((2, 5, 1))}
    import onnxruntime as ort

    before = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    assert split_concat_convs(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Conv", "Add", "Conv", "Add"]
    assert all(n.name.startswith("/m/Conv") for n in model.graph.node)  # scope kept for `compare`
    assert {i.name for i in model.graph.initializer} == {"w_part0", "w_part1", "w_part2", "b"}
    after = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    assert np.abs(after - before).max() <= 1e-5 and np.abs(before).max() > 1


def test_split_concat_read_by_two_convs_and_nested():
    """Unit case: a Concat read by two Convs (IBNorm's halves once slice-split) splits both and goes; a part that
    reads a Concat itself is split again; a Concat something else also reads is left alone."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from matteconv.export.onnx.passes.split_concat_conv import split_concat_convs

    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(size=(2, 6, 3, 3)).astype(np.float32), rng.normal(size=(3, 6, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Concat", ["a", "b"], ["ab"], axis=1, name="/m/Concat"),  # 2 + 2 channels
             helper.make_node("Concat", ["ab", "c"], ["abc"], axis=1, name="/n/Concat"),  # 4 + 2 channels
             helper.make_node("Conv", ["abc", "w1"], ["y1"], pads=[1, 1, 1, 1], name="/n/Conv"),
             helper.make_node("Conv", ["abc", "w2"], ["y2"], name="/n/Conv_1"),
             helper.make_node("Concat", ["a", "c"], ["ac"], axis=1, name="/k/Concat"),
             helper.make_node("Conv", ["ac", "w3"], ["y3"], name="/k/Conv"),
             helper.make_node("Relu", ["ac"], ["y4"], name="/k/Relu")]
    ins = [helper.make_tensor_value_info(n, 1, [1, 2, 5, 5]) for n in "abc"]
    outs = [helper.make_tensor_value_info(n, 1, [1, c, 5, 5]) for n, c in (("y1", 2), ("y2", 3), ("y3", 1), ("y4", 4))]
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
             numpy_helper.from_array(rng.normal(size=(1, 4, 1, 1)).astype(np.float32), "w3")]
    model = helper.make_model(helper.make_graph(nodes, "g", ins, outs, inits), opset_imports=[helper.make_opsetid("", 11)])
    feeds = {n: rng.normal(size=(1, 2, 5, 5)).astype(np.float32) for n in "abc"}
    before = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert split_concat_convs(model) == 4  # /n/Conv and /n/Conv_1, then their parts reading /m/Concat
    onnx.checker.check_model(model, full_check=True)
    ops = [(n.op_type, n.name) for n in model.graph.node]
    assert ("Concat", "/n/Concat") not in ops and ("Concat", "/m/Concat") not in ops and ("Concat", "/k/Concat") in ops
    assert sum(op == "Conv" for op, _ in ops) == 2 * 3 + 1
    after = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    for x, y in zip(before, after):
        assert np.abs(x - y).max() <= 1e-5 and np.abs(x).max() > 0.5


def test_relus_move_before_a_concat_read_only_by_them():
    """Unit case: Relu(Concat(a, b)) -> Concat(Relu(a), Relu(b)) bitwise, the Relu's scope kept; a Concat that
    something else also reads is left alone (its pre-ReLU values are needed)."""
    import onnxruntime as ort
    from onnx import helper

    from matteconv.export.onnx.passes.relu_before_concat import relus_before_concats

    nodes = [helper.make_node("Concat", ["a", "b"], ["c"], axis=1, name="/m/Concat"),
             helper.make_node("Relu", ["c"], ["r"], name="/m/Relu"),
             helper.make_node("Concat", ["a", "b"], ["d"], axis=1, name="/n/Concat"),
             helper.make_node("Relu", ["d"], ["s"], name="/n/Relu")]
    vi = [helper.make_tensor_value_info(n, 1, [1, c, 4, 4]) for n, c in (("a", 2), ("b", 3))]
    outs = [helper.make_tensor_value_info(n, 1, [1, 5, 4, 4]) for n in ("r", "s", "d")]
    model = helper.make_model(helper.make_graph(nodes, "g", vi, outs), opset_imports=[helper.make_opsetid("", 11)])
    rng = np.random.default_rng(2)
    feeds = {"a": rng.normal(size=(1, 2, 4, 4)).astype(np.float32), "b": rng.normal(size=(1, 3, 4, 4)).astype(np.float32)}
    before = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert relus_before_concats(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [(n.op_type, n.name) for n in model.graph.node[:3]] == [("Relu", "/m/Relu_in0"), ("Relu", "/m/Relu_in1"),
                                                                   ("Concat", "/m/Relu_Concat")]
    after = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)  # max(x, 0) per element, wherever it is computed


def test_split_sliced_conv_computes_each_channel_slice_apart():
    """Unit case: a Conv whose output feeds only two channel Slices (IBNorm's halves; the second with torch's
    INT64_MAX end) becomes two Convs on the rows of W and bias; a Conv with another consumer is left alone."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from matteconv.export.onnx.passes.split_sliced_conv import split_sliced_convs

    rng = np.random.default_rng(1)
    w, bias = rng.normal(size=(8, 3, 3, 3)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    consts = {"s0": [0], "e0": [3], "s1": [3], "e1": [2**63 - 1], "ax": [1]}
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")] + \
        [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items()]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="/m/Conv"),
             helper.make_node("Slice", ["c", "s0", "e0", "ax"], ["lo"], name="/m/Slice"),
             helper.make_node("Slice", ["c", "s1", "e1", "ax"], ["hi"], name="/m/Slice_1"),
             helper.make_node("Relu", ["hi"], ["hi_r"], name="/m/Relu"),
             helper.make_node("Concat", ["lo", "hi_r"], ["y"], axis=1, name="/m/Concat"),
             helper.make_node("Conv", ["y", "w2"], ["z"], name="/m/Conv_1"),
             helper.make_node("Slice", ["z", "s0", "e0", "ax"], ["z_lo"], name="/m/Slice_2")]
    inits.append(numpy_helper.from_array(rng.normal(size=(4, 8, 1, 1)).astype(np.float32), "w2"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("z_lo", 1, [1, 3, 6, 6]),
                               helper.make_tensor_value_info("z", 1, [1, 4, 6, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    feeds = {"x": rng.normal(size=(1, 3, 6, 6)).astype(np.float32)}
    before = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert split_sliced_convs(model) == 1  # /m/Conv_1's output is also a graph output: kept
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Conv", "Conv", "Relu", "Concat", "Conv", "Slice"]
    assert [n.name for n in model.graph.node[:2]] == ["/m/Conv_ch0_3", "/m/Conv_ch3_8"]
    after = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    # the same dot products per output channel; fp32 rounding allowed in case the kernel blocks channels apart
    for a, b in zip(before, after):
        assert np.abs(a - b).max() <= 1e-5 and np.abs(a).max() > 1


def test_split_sliced_conv_reads_a_negative_start_from_the_end():
    """ONNX Slice: a negative start counts from the end (-5 of 8 channels is 3), as ort-select-ibnorm reads it too
    (one parser, concat_conv.channel_slice); it used to be clamped to 0, which split the wrong rows."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    from matteconv.export.onnx.passes.split_sliced_conv import split_sliced_convs

    rng = np.random.default_rng(2)
    consts = {"s0": [0], "e0": [3], "s1": [-5], "e1": [2**63 - 1], "ax": [1]}
    inits = [numpy_helper.from_array(rng.normal(size=(8, 3, 1, 1)).astype(np.float32), "w")] + \
        [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in consts.items()]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/m/Conv"),
             helper.make_node("Slice", ["c", "s0", "e0", "ax"], ["lo"], name="/m/Slice"),
             helper.make_node("Slice", ["c", "s1", "e1", "ax"], ["hi"], name="/m/Slice_1")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("lo", 1, [1, 3, 4, 4]),
                               helper.make_tensor_value_info("hi", 1, [1, 5, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    feeds = {"x": rng.normal(size=(1, 3, 4, 4)).astype(np.float32)}
    before = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    assert split_sliced_convs(model) == 1
    assert [n.name for n in model.graph.node] == ["/m/Conv_ch0_3", "/m/Conv_ch3_8"]
    after = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    for a, b in zip(before, after):  # the same 3-term dot products per output channel
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5


def _instance_norm_model(c: int, shape: tuple[int, ...]) -> onnx.ModelProto:
    from onnx import helper, numpy_helper

    node = helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], epsilon=1e-5,
                            name="/hr_branch/inorm/InstanceNormalization")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", 1, list(shape))],
                              [helper.make_tensor_value_info("y", 1, list(shape))],
                              [numpy_helper.from_array(np.ones(c, np.float32), "scale"),
                               numpy_helper.from_array(np.zeros(c, np.float32), "bias")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])


def test_centred_instance_norm_is_exact_on_flat_wall_channels(flat_wall_channels):
    """onnxruntime's InstanceNormalization cancels on a channel whose mean is large against its spread; the
    export's ReduceMean + Sub in front of it removes the cancellation. Measured on this input (outputs reach |34|):
    plain 3.5e-2 from float64, centred 7.3e-4 (what remains is a variance 4e-5 too large, the same whatever
    constant is subtracted first: onnxruntime's own fp32 sums), PyTorch fp32 2.8e-5. Bound: 5e-5 of the largest
    output, fp32's 6e-8 times the ~800 border terms that hold all the variance, summed one by one."""
    import onnxruntime as ort

    from matteconv.ascend.rules import ONNX_OPS
    from matteconv.export.onnx.passes.centre_instance_norm import centre_instance_norms

    x = flat_wall_channels.numpy()
    ref = torch.nn.functional.instance_norm(flat_wall_channels.double()).numpy()
    model = _instance_norm_model(4, x.shape)
    plain = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert centre_instance_norms(model) == 1 and centre_instance_norms(model) == 0  # idempotent
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["ReduceMean", "Sub", "InstanceNormalization"]
    assert all(n.name.startswith("/hr_branch/inorm/") for n in model.graph.node)  # scope kept for `compare`
    assert {n.op_type for n in model.graph.node} <= ONNX_OPS  # in CANN's ONNX list (rules.py cites the pages)
    centred = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    bound = 5e-5 * np.abs(ref).max()
    assert np.abs(plain - ref).max() > 10 * bound  # the problem is real on this runtime
    assert np.abs(centred - ref).max() < bound


@pytest.mark.slow
def test_batchnorm_fold_is_a_choice_with_the_same_parity(ref3_ckpt, tmp_path):
    """Default: IBNorm's BatchNorm half stays a BatchNormalization node (faster in onnxruntime on the AVX2 kind,
    README); fold_batchnorm=True folds it. Both pass the same parity rule and agree to fp32 rounding."""
    ck = load_checkpoint(ref3_ckpt)
    outs = {}
    for fold in (False, True):
        res = export_onnx(ck, tmp_path / f"fold_{fold}.onnx", (64, 64), fold_batchnorm=fold)
        m = onnx.load(str(res.path))
        n_bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
        assert n_bn == (0 if fold else 16)  # one per IBNorm
        assert {p.key: p.value for p in m.metadata_props}["batchnorm_folded"] == str(fold).lower()
        outs[fold] = OnnxBackend(res.path).run(preprocess.prepare(samples.photos()["astronaut"], "device",
                                                                   (64, 64)).tensor)
    assert np.abs(outs[False] - outs[True]).max() <= 1e-4  # fold reorders fp32 products only

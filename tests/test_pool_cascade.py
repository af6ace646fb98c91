"""`global-pool-cascade` (export/onnx/passes/global_pool_cascade.py): the plan, exactness against float64 in
onnxruntime, where it fires and where it does not, and what `matteconv profile` predicts before and after, on
small graphs built here (MODNet's SE pool at 704x1280 is a GlobalAveragePool over 1 x 1280 x 22 x 40)."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as oh
from typer.testing import CliRunner

from matteconv.ascend.profile import profile_model
from matteconv.ascend.profile import get_soc
from matteconv.ascend.profile.cost import layer_cost
from matteconv.ascend.profile.graph import Layer
from matteconv.backends import ort_session
from matteconv.cli import app
from matteconv.export.depthwise_plan import BUDGET, depthwise_need
from matteconv.export.onnx.graph import GraphView, name_problems
from matteconv.export.onnx.passes import BY_NAME, PassContext, recorded_counts
from matteconv.export.pool_plan import (AICPU_ELEMENTS_PER_LAUNCH, AVGPOOL_AICPU_STRIDE, AVGPOOL_AICPU_WINDOW,
                                        plan_cascade, stage_fits)

EPS32 = float(np.finfo(np.float32).eps)
PASS = BY_NAME["global-pool-cascade"]


def _pool_model(shape, op="GlobalAveragePool", out_hw=(1, 1), **attrs) -> onnx.ModelProto:
    """x (N, C, H, W) -> Relu -> one pool (scoped as torch names MODNet's SE pool) -> y (N, C, *out_hw)."""
    n, c = shape[:2]
    nodes = [oh.make_node("Relu", ["x"], ["r"], name="/se_block/relu/Relu"),
             oh.make_node(op, ["r"], ["y"], name=f"/se_block/pool/{op}", **attrs)]
    g = oh.make_graph(nodes, "se", [oh.make_tensor_value_info("x", T.FLOAT, list(shape))],
                      [oh.make_tensor_value_info("y", T.FLOAT, [n, c, *out_hw])])
    model = oh.make_model(g, opset_imports=[oh.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _apply(model: onnx.ModelProto):
    ctx = PassContext(GraphView(model))
    return PASS.apply(model, ctx), ctx.notes


def _x(shape, seed=0) -> np.ndarray:
    # ReLU6 activations as MODNet's backbone writes them, shifted off zero so the mean is not tiny
    return np.random.default_rng(seed).uniform(0, 6, shape).astype(np.float32)


# --- the plan ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hw, plan", [((12, 12), []), ((16, 16), []), ((22, 40), [(11, 20)]), ((9, 40), [(9, 20)]),
                                      ((23, 41), [(1, 41)]), ((256, 256), [(2, 32), (32, 8)]), ((8, 1040), None)])
def test_plan_divides_the_map_and_keeps_every_stage_within_the_ai_core_limits(hw, plan):
    assert plan_cascade(*hw) == plan
    if not plan:
        return
    h, w = hw
    for a, b in plan:
        assert h % a == 0 and w % b == 0  # equal-sized blocks: what makes the mean of means the mean
        assert a * b <= AVGPOOL_AICPU_WINDOW and max(a, b) <= AVGPOOL_AICPU_STRIDE
        assert depthwise_need(a, b, a, w) <= BUDGET
        h, w = h // a, w // b
    assert h * w <= AVGPOOL_AICPU_WINDOW  # the last, global, stage is within the window too


def test_stage_fits_holds_the_buffer_rule():
    # 22x10 on a 40-wide map: 22*10*32 + 40*(31*22 + 10) = 34,720 > 32,768, so 22x40 takes 11x20 (21,480)
    assert not stage_fits(22, 10, 40) and stage_fits(11, 20, 40)
    assert not stage_fits(17, 16, 1000) and not stage_fits(64, 1, 64)


# --- exactness --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, form, windows", [((1, 64, 22, 40), "cascade", (220, 4)),  # MODNet at 704x1280
                                                  ((1, 16, 23, 41), "cascade", (41, 23)),
                                                  ((1, 4, 8, 1040), "reduce-mean", (8320,))])
def test_rewrite_computes_the_mean_within_its_summation_bound_of_float64(shape, form, windows):
    model = _pool_model(shape)
    before = ort_session(model.SerializeToString())
    count, notes = _apply(model)
    assert count == {"cascade": int(form == "cascade"), "reduce-mean": int(form == "reduce-mean")}
    ops = [n.op_type for n in model.graph.node]
    assert ops == (["Relu", "AveragePool", "GlobalAveragePool"] if form == "cascade" else ["Relu", "ReduceMean"])
    assert not name_problems(model.graph)
    onnx.checker.check_model(model, full_check=True)
    x = _x(shape)
    want = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    got = ort_session(model.SerializeToString()).run(None, {"x": x})[0]
    old = before.run(None, {"x": x})[0]
    scale = np.abs(x.astype(np.float64)).mean(axis=(2, 3), keepdims=True)
    # recursive summation of k terms: (k - 1) u sum|x| (Higham, u = eps / 2); per stage k = its window, plus a
    # rounding per division, so (sum of windows + stages) u mean|x| bounds the cascade
    bound = (sum(windows) + len(windows)) * EPS32 / 2 * scale
    err = np.abs(got - want)
    assert (err <= bound).all(), f"max error {err.max():.3g} over bound {bound.min():.3g}"
    assert np.abs(got - old).max() <= 2 * bound.max()  # and the original pool agrees within the same bound
    assert len(notes) == 1 and "W11001" in notes[0] and "AI Core" in notes[0]


def test_an_average_pool_over_its_whole_map_is_a_global_pool_and_keeps_its_name_and_kind():
    model = _pool_model((1, 32, 22, 40), "AveragePool", kernel_shape=[22, 40], strides=[22, 40])
    x = _x((1, 32, 22, 40), 1)
    count, _ = _apply(model)
    assert count["cascade"] == 1
    last = model.graph.node[-1]
    assert (last.name, last.op_type, last.output[0]) == ("/se_block/pool/AveragePool", "AveragePool", "y")
    assert [list(a.ints) for a in last.attribute] == [[2, 2], [1, 1]]  # kernel, strides: the 2x2 left
    got = ort_session(model.SerializeToString()).run(None, {"x": x})[0]
    want = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
    assert np.abs(got - want).max() <= 230 * EPS32 * 6


# --- where it pays: the pass against profile's cost model -------------------------------------------------------

def _pool_layer(name, shape, kernel):
    """The cost model's Layer for an average pool on `shape`: global when kernel is None, else kernel = stride."""
    n, c, h, w = shape
    glob = kernel is None
    kernel = (h, w) if glob else kernel
    out = (n, c, 1, 1) if glob else (n, c, h // kernel[0], w // kernel[1])
    return Layer(name, "GlobalAveragePool" if glob else "AveragePool", "pool", ["i"], ["o"], [shape], [out],
                 kernel=kernel, stride=kernel, attrs={"mode": "avg", "global": glob})


def _predicted(shape, plan, soc):
    """(seconds of the global pool as it is, seconds of the rewrite) in `matteconv profile`'s cost model."""
    before = layer_cost(_pool_layer("pool", shape, None), soc).time
    if plan is None:
        n, c = shape[:2]
        return before, layer_cost(Layer("m", "ReduceMean", "reduce", ["i"], ["o"], [shape], [(n, c, 1, 1)]), soc).time
    after, cur = 0.0, shape
    for k in plan:
        la = _pool_layer("stage", cur, k)
        after += layer_cost(la, soc).time
        cur = la.out_shape
    return before, after + layer_cost(_pool_layer("last", cur, None), soc).time


def test_the_launch_threshold_is_the_cost_models():
    soc = get_soc("Ascend310")
    assert AICPU_ELEMENTS_PER_LAUNCH == round(soc.op_overhead * soc.aicpu_elements_per_s)


@pytest.mark.parametrize("hw", [(17, 16), (9, 40), (22, 40), (23, 41), (34, 60), (8, 1040), (256, 256)])
def test_the_pass_rewrites_exactly_the_pools_the_cost_model_predicts_faster(hw):
    """Over channel counts around the break-even (the cascade's extra launches against the AI CPU's rate) and
    MODNet's 1280: rewritten if and only if profile's cost model predicts the rewrite faster."""
    soc = get_soc("Ascend310")
    plan = plan_cascade(*hw)
    for c in (1, 2, 3, 4, 5, 6, 8, 16, 1280):
        before, after = _predicted((1, c, *hw), plan, soc)
        model = _pool_model((1, c, *hw))
        count, _ = _apply(model)
        assert (sum(count.values()) == 1) == (after < before), f"{c} x {hw}: {before * 1e6:.1f} vs {after * 1e6:.1f} us"
    if hw == (22, 40):  # MODNet at 704x1280: what the docs quote
        before, after = _predicted((1, 1280, 22, 40), plan, soc)
        assert round(before * 1e3, 1) == 15.6 and round(after * 1e3, 3) == 0.064


# --- where it fires ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1280, 16, 16), (1, 1280, 12, 12)])  # MODNet's SE pool at 512 and 384
def test_a_pool_within_the_window_is_left_alone(shape):
    model = _pool_model(shape)
    before = model.SerializeToString()
    count, notes = _apply(model)
    assert count == {"cascade": 0, "reduce-mean": 0} and not notes and model.SerializeToString() == before


def test_pools_the_rule_does_not_cover_are_left_alone():
    # a strided pool whose window is not its map, a max pool, a dynamic shape: none is the global average pool
    for model in (_pool_model((1, 8, 44, 80), "AveragePool", (2, 2), kernel_shape=[22, 40], strides=[22, 40]),
                  _pool_model((1, 8, 22, 40), "GlobalMaxPool")):
        before = model.SerializeToString()
        assert _apply(model)[0] == {"cascade": 0, "reduce-mean": 0} and model.SerializeToString() == before
    dyn = _pool_model((1, 8, 22, 40))
    dyn.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    assert _apply(dyn)[0] == {"cascade": 0, "reduce-mean": 0}


def test_zero_counts_of_the_pass_stay_out_of_the_metadata_and_other_passes_keep_theirs():
    counts = {"depthwise-split": 0, "global-pool-cascade": {"cascade": 0, "reduce-mean": 0}}
    assert recorded_counts(counts) == {"depthwise-split": 0}
    counts["global-pool-cascade"]["cascade"] = 1
    assert recorded_counts(counts) == counts


def test_the_default_export_records_no_pool_cascade(ref3_onnx_128):
    meta = {p.key: p.value for p in onnx.load(str(ref3_onnx_128)).metadata_props}
    assert "global-pool-cascade" not in json.loads(meta["passes"])
    assert not any("W11001" in line for line in json.loads(meta["rule_rewrites"]))


# --- what profile predicts before and after ---------------------------------------------------------------------

def test_profile_drops_the_avgpool_warning_and_predicts_the_saving(tmp_path):
    """MODNet's SE pool at 704x1280 alone: 1 x 1280 x 22 x 40 on the AI CPU before (1.126 M elements at the
    ICNet rate of 72 M/s: 15.6 ms), two Vector pools after."""
    before_path, after_path = tmp_path / "before.onnx", tmp_path / "after.onnx"
    model = _pool_model((1, 1280, 22, 40))
    onnx.save(model, str(before_path))
    _apply(model)
    onnx.save(model, str(after_path))
    before = profile_model(before_path, aipp=None, output_type="fp16")
    after = profile_model(after_path, aipp=None, output_type="fp16")
    pool = next(c for c in before.layers if c.type == "GlobalAveragePool")
    assert pool.engine == "AI CPU" and pool.time == pytest.approx(1280 * 22 * 40 / 72e6, rel=0.02)
    assert [w.rule for w in before.warnings] == ["avgpool-aicpu"] and not after.warnings
    assert {c.engine for c in after.layers if "Pool" in c.type} == {"Vector"}
    saved = before.total - after.total
    assert saved == pytest.approx(before.warnings[0].cost, rel=0.05) and after.total < 0.05 * before.total
    r = CliRunner().invoke(app, ["profile", str(after_path), "--aipp", "none", "--output-type", "fp16", "--json"])
    assert r.exit_code == 0 and not json.loads(r.output)["warnings"]


@pytest.mark.slow
def test_a_wide_export_gets_the_cascade_and_profile_stops_warning(ref3_ckpt, tmp_path):
    """The trained reference at 288x1280 (SE pool 9x40 = 360 elements): the export writes the cascade, records it,
    keeps its parity rule, and `profile` drops the avgpool-aicpu warning and its cost; the same export without the
    pass keeps both."""
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(ref3_ckpt)
    res = export_onnx(ckpt, tmp_path / "on.onnx", (288, 1280))
    off = export_onnx(ckpt, tmp_path / "off.onnx", (288, 1280), skip=["global-pool-cascade"])
    assert res.passes["global-pool-cascade"] == {"cascade": 1, "reduce-mean": 0}
    assert res.max_abs_diff <= res.parity_tolerance
    meta = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    assert json.loads(meta["passes"])["global-pool-cascade"]["cascade"] == 1
    assert any("9x40" in line and "AveragePool 9x20" in line for line in json.loads(meta["rule_rewrites"]))
    before, after = profile_model(off.path, output_type="fp16"), profile_model(res.path, output_type="fp16")
    warned = [w for w in before.warnings if w.rule == "avgpool-aicpu"]
    assert len(warned) == 1 and not [w for w in after.warnings if w.rule == "avgpool-aicpu"]
    assert before.total - after.total == pytest.approx(warned[0].cost, rel=0.05)


def test_two_pools_in_one_scope_get_unique_names():
    model = _pool_model((1, 8, 22, 40))
    model.graph.node.append(oh.make_node("AveragePool", ["r"], ["y2"], name="/se_block/pool/AveragePool",
                                         kernel_shape=[22, 40]))
    model.graph.output.append(oh.make_tensor_value_info("y2", T.FLOAT, [1, 8, 1, 1]))
    assert _apply(model)[0]["cascade"] == 2
    assert not name_problems(model.graph)
    onnx.checker.check_model(model, full_check=True)

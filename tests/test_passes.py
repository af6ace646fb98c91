"""The ONNX pass registry (export/onnx/passes) and the contract every pass keeps, checked pass by pass.

Each pass runs on the graph the export hands it (every default pass before it already applied), first on a toy
graph with one instance of each pattern the passes rewrite (tier 1), then on the 128x128 trained reference's
traced graph (slow). Every pass must: return 0 and change nothing when run again (idempotent); keep the graph
inputs and outputs with their names; put every new node inside the module scope of a node it replaced (what
`compare` matches PyTorch modules by); leave each kept tensor's inferred shape as it was (what GraphView's cached
shapes rely on); name every node uniquely, in a module scope, with its op type in its name (issue 34: atc's
`--keep_dtype` addresses layers by name); give a graph the ONNX checker takes; compute what the graph computed
before, within fp32's reordering bound on the toy graph and within the export's parity rule against PyTorch on
the reference.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from matteconv.backends import ort_session
from matteconv.errors import MatteconvError
from matteconv.export.onnx import passes as registry
from matteconv.export.onnx.graph import GraphView, inferred_dims, name_problems
from matteconv.export.onnx.passes import (BY_NAME, PROFILES, REGISTRY, Pass, PassContext, check_registry, resolve,
                                          run_passes)

EPS32 = float(np.finfo(np.float32).eps)
LONGEST_SUM = 64 * 25  # the toy graph's longest dot product (the 5x5 convolution of 64 channels)
BLOCK = 16  # the NCHWc block the `ort-*` passes are told to tune for (AVX-512), whatever this CPU's is
PIPELINE = resolve("onnxruntime")  # the default passes, in run order, of the profile holding all but `any`-only
# ones (global-pool-cascade), which are handed the graph where they would run in `any`


def _init(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _toy_graph() -> onnx.ModelProto:
    """MODNet's patterns as torch traces them, before any pass, scoped like a torch export:
    Conv -> IBNorm (Slice -> BatchNorm | Slice -> InstanceNorm) -> Concat -> Relu, read by a Concat with the
    input (a Conv of 64 channels reads it) and by a half_pixel bilinear x2 Resize -> Conv; that Conv's 64 channels
    upsampled x2 into a 5x5 convolution; a 1x1 head to one channel from 8 channels of the input; a 3x3 stride-2
    depthwise convolution on a 4 x 8 x 1040 input (past CANN's depthwise buffer rule), which a global average
    pool also reads (8320 elements, past atc's AI Core pool: no cascade fits so wide a map); MODNet's SE pool
    at 704x1280 (a 22x40 map)."""
    rng = np.random.default_rng(0)
    f32 = lambda *shape, s=0.2: rng.normal(0, s, shape).astype(np.float32)  # noqa: E731
    c, half = 32, 16
    inits = [
        _init("w0", f32(c, c, 3, 3)), _init("b0", f32(c)), _init("gamma", rng.uniform(0.5, 2, half).astype(np.float32)),
        _init("beta", f32(half)), _init("mean", f32(half)), _init("var", rng.uniform(0.2, 3, half).astype(np.float32)),
        _init("in_scale", np.ones(half, np.float32)), _init("in_bias", np.zeros(half, np.float32)),
        _init("s0", np.array([0], np.int64)), _init("s1", np.array([half], np.int64)),
        _init("s2", np.array([c], np.int64)), _init("ax", np.array([1], np.int64)),
        _init("roi", np.array([], np.float32)), _init("up2", np.array([1, 1, 2, 2], np.float32)),
        _init("w_fuse", f32(64, 2 * c, 1, 1)), _init("w_next", f32(16, c, 3, 3)),
        _init("w_5x5", f32(4, 64, 5, 5, s=0.05)), _init("b_5x5", f32(4)),
        _init("w_h8", f32(8, c, 1, 1)), _init("w_head", f32(1, 8, 1, 1)), _init("b_head", f32(1)),
        _init("w_dw", f32(4, 1, 3, 3)),
    ]
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w0", "b0"], ["c"], name="/blk/conv/Conv", pads=[1, 1, 1, 1]),
        node("Slice", ["c", "s0", "s1", "ax"], ["bn_in"], name="/blk/ibn/Slice"),
        node("BatchNormalization", ["bn_in", "gamma", "beta", "mean", "var"], ["bn"],
             name="/blk/ibn/bnorm/BatchNormalization", epsilon=1e-5),
        node("Slice", ["c", "s1", "s2", "ax"], ["in_in"], name="/blk/ibn/Slice_1"),
        node("InstanceNormalization", ["in_in", "in_scale", "in_bias"], ["inorm"],
             name="/blk/ibn/inorm/InstanceNormalization", epsilon=1e-5),
        node("Concat", ["bn", "inorm"], ["ib_cat"], name="/blk/ibn/Concat", axis=1),
        node("Relu", ["ib_cat"], ["ib"], name="/blk/relu/Relu"),
        node("Concat", ["ib", "x"], ["fuse_in"], name="/fuse/Concat", axis=1),
        node("Conv", ["fuse_in", "w_fuse"], ["fused"], name="/fuse/conv/Conv"),
        node("Resize", ["ib", "roi", "up2"], ["up"], name="/blk/Resize", mode="linear",
             coordinate_transformation_mode="half_pixel"),
        node("Conv", ["up", "w_next"], ["y"], name="/next/Conv", pads=[1, 1, 1, 1]),
        node("Resize", ["fused", "roi", "up2"], ["fused_up"], name="/lr/Resize", mode="linear",
             coordinate_transformation_mode="pytorch_half_pixel"),
        node("Conv", ["fused_up", "w_5x5", "b_5x5"], ["u"], name="/lr/conv/Conv", pads=[2, 2, 2, 2]),
        node("Conv", ["x", "w_h8"], ["h8"], name="/head/conv/Conv"),
        node("Conv", ["h8", "w_head", "b_head"], ["alpha"], name="/head/out/Conv"),
        node("Conv", ["wide", "w_dw"], ["d"], name="/dw/conv/Conv", group=4, strides=[2, 2], pads=[1, 1, 1, 1]),
        node("GlobalAveragePool", ["wide"], ["wide_mean"], name="/dw/pool/GlobalAveragePool"),
        node("GlobalAveragePool", ["se_in"], ["se"], name="/se_block/pool/GlobalAveragePool"),
    ]
    h, w = 12, 10
    graph = helper.make_graph(
        nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w]),
                       helper.make_tensor_value_info("wide", TensorProto.FLOAT, [1, 4, 8, 1040]),
                       helper.make_tensor_value_info("se_in", TensorProto.FLOAT, [1, 8, 22, 40])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
         (("y", [1, 16, 2 * h, 2 * w]), ("u", [1, 4, 2 * h, 2 * w]), ("alpha", [1, 1, h, w]), ("d", [1, 4, 4, 520]),
          ("wide_mean", [1, 4, 1, 1]), ("se", [1, 8, 1, 1]))],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _toy_feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x": (rng.normal(0, 1, (1, 32, 12, 10)) + 20).astype(np.float32),  # the offset centring is for
            "wide": rng.normal(0, 1, (1, 4, 8, 1040)).astype(np.float32),
            "se_in": rng.uniform(0, 6, (1, 8, 22, 40)).astype(np.float32)}  # after ReLU6, as in MODNet


def _stages(model: onnx.ModelProto, pipeline) -> dict[str, onnx.ModelProto]:
    """pass name -> the graph that pass is handed in the export (copies; every default pass before it applied).
    A non-default pass gets the graph where it would run."""
    out, ctx = {}, PassContext(GraphView(model), block_size=BLOCK)
    for p in REGISTRY:
        out[p.name] = copy.deepcopy(model)
        if p in pipeline:
            run_passes(model, [p], ctx)
    return out


def _run_pass(p: Pass, model: onnx.ModelProto):
    return p.apply(model, PassContext(GraphView(model), block_size=BLOCK))


def _is_zero(count) -> bool:
    return all(v == 0 for v in count.values()) if isinstance(count, dict) else count == 0


def _signature(n: onnx.NodeProto) -> bytes:
    return n.SerializeToString()


def _scope(name: str) -> str:
    """The module scope a node name lies in: '/a/b/Conv' -> '/a/b/'; an unscoped name is its own scope."""
    head, sep, _ = name.rpartition("/")
    return head + sep if sep else name


def _scope_problems(before: onnx.ModelProto, after: onnx.ModelProto) -> list[str]:
    """New nodes whose name lies in no replaced node's scope."""
    old = {_signature(n) for n in before.graph.node}
    new_sigs = {_signature(n) for n in after.graph.node}
    replaced = [n for n in before.graph.node if _signature(n) not in new_sigs]
    scopes = {_scope(n.name) for n in replaced}
    return [n.name for n in after.graph.node
            if _signature(n) not in old and not any(n.name.startswith(s) for s in scopes)]


def _check_contract(p: Pass, before: onnx.ModelProto) -> tuple[onnx.ModelProto, object]:
    """Apply `p` to a copy of `before` and check every rule but the numbers; the rewritten model and its count."""
    after = copy.deepcopy(before)
    count = _run_pass(p, after)
    once = after.SerializeToString()
    again = _run_pass(p, after)
    assert _is_zero(again) and after.SerializeToString() == once, f"{p.name}: a second run rewrote {again}"
    assert [i.name for i in after.graph.input] == [i.name for i in before.graph.input]
    assert [o.name for o in after.graph.output] == [o.name for o in before.graph.output]
    assert not _scope_problems(before, after), f"{p.name}: nodes outside their scope {_scope_problems(before, after)}"
    assert not name_problems(after.graph), f"{p.name}: {name_problems(after.graph)}"
    dims0, dims1 = inferred_dims(before), inferred_dims(after)
    kept = {o for n in after.graph.node for o in n.output} & {o for n in before.graph.node for o in n.output}
    changed = sorted(t for t in kept if dims0.get(t) != dims1.get(t))
    assert not changed, f"{p.name}: inferred shapes changed for {changed[:5]}"
    onnx.checker.check_model(after, full_check=True)
    return after, count


# --- the registry ---------------------------------------------------------------------------------------------

def test_registry_order_meets_every_after_constraint_and_every_module_is_registered():
    index = {p.name: i for i, p in enumerate(REGISTRY)}
    for p in REGISTRY:
        assert all(index[b] < index[p.name] for b in p.after), p.name
        assert p.exact and p.profiles <= set(PROFILES)
    folder = Path(registry.__file__).parent
    modules = {f.stem for f in folder.glob("*.py")} - {"__init__", "base"}
    assert modules == set(registry._ORDER)  # a pass module nobody registered would never run
    assert len(BY_NAME) == len(REGISTRY) == 12


def test_registry_refuses_a_broken_order_or_a_duplicate():
    swapped = (BY_NAME["split-concat-conv"], BY_NAME["relu-before-concat"])
    with pytest.raises(ValueError, match="must run after 'relu-before-concat'"):
        check_registry(swapped)
    with pytest.raises(ValueError, match="not registered"):
        check_registry((BY_NAME["split-concat-conv"],))
    with pytest.raises(ValueError, match="registered twice"):
        check_registry((BY_NAME["fix-resize-modes"], BY_NAME["fix-resize-modes"]))


def test_profiles_resolve_to_their_default_passes_and_skip_and_add_by_name():
    names = lambda ps: [p.name for p in ps]  # noqa: E731
    any_ = names(resolve("any"))
    assert any_ == ["relu-before-concat", "split-concat-conv", "centre-instance-norm", "depthwise-split",
                    "fix-resize-modes", "global-pool-cascade"]
    ort = names(resolve("onnxruntime"))  # no pool cascade: onnxruntime has no AI CPU fallback to avoid
    assert ort[:5] == any_[:5] and all(n.startswith("ort-") for n in ort[5:]) and len(ort) == 10
    assert "centre-instance-norm" not in names(resolve("any", skip=["centre-instance-norm"]))
    assert names(resolve("any", add=["split-sliced-conv"]))[:2] == ["relu-before-concat", "split-sliced-conv"]
    with pytest.raises(MatteconvError, match="no ONNX pass named 'fuse-everything'"):
        resolve("any", skip=["fuse-everything"])
    with pytest.raises(MatteconvError, match="not for runtime 'any'"):
        resolve("any", add=["ort-matmul-head"])
    with pytest.raises(MatteconvError, match="runtime 'tensorrt' not supported"):
        resolve("tensorrt")


# --- the contract, on the toy graph ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_stages():
    return _stages(_toy_graph(), PIPELINE)


# what each pass rewrites in the toy graph, as handed it: every pass is exercised, none is a no-op here
TOY_COUNTS = {"relu-before-concat": 1, "split-sliced-conv": 1, "split-concat-conv": 1, "centre-instance-norm": 1,
              "depthwise-split": 1, "fix-resize-modes": 1,
              "global-pool-cascade": {"cascade": 1, "reduce-mean": 1}, "ort-matmul-head": 1, "ort-select-ibnorm": 2,
              "ort-blocked-in-relu": 1, "ort-half-pixel": 2, "ort-upsampled-conv": {"phased": 1, "contracted": 0}}


@pytest.mark.parametrize("name", [p.name for p in REGISTRY])
def test_each_pass_keeps_the_contract_on_the_toy_graph(name, toy_stages):
    before = toy_stages[name]
    after, count = _check_contract(BY_NAME[name], before)
    assert count == TOY_COUNTS[name]
    feeds = _toy_feeds()
    want = ort_session(before.SerializeToString()).run(None, feeds)
    got = ort_session(after.SerializeToString()).run(None, feeds)
    for out, a, b in zip(before.graph.output, got, want):
        # reordering an n-term fp32 sum moves it by at most n * eps * the sum of |terms| (Higham); the largest
        # output magnitude stands in for that sum (every term here is of its order)
        bound = LONGEST_SUM * EPS32 * max(1.0, float(np.abs(b).max()))
        assert np.abs(a - b).max() <= bound, f"{name}: output {out.name} moved {np.abs(a - b).max():.3g} > {bound:.3g}"


def test_the_export_pipeline_infers_shapes_once_on_the_toy_graph():
    model = _toy_graph()
    ctx = PassContext(GraphView(model), block_size=BLOCK)
    run_passes(model, PIPELINE, ctx)
    # six passes read shapes; each new tensor they ask about was known at the first inference (MODNet at 384:
    # one inference per export for either runtime, against 2 for `any` and 6 for `onnxruntime` before GraphView)
    assert ctx.view.inferences <= 2


def test_every_node_of_the_export_says_what_it_is(ref3_onnx_128):
    """The whole export as written (128x128, runtime any): unique names, each in a module scope and containing
    its op type; before issue 34 five Concats kept the names of the ReLUs they replaced. The onnxruntime export is
    held to the same in tests/test_nchwc.py."""
    model = onnx.load(str(ref3_onnx_128))
    assert not name_problems(model.graph)
    concats_of_relus = [n.name for n in model.graph.node if n.op_type == "Concat" and "Relu" in n.name]
    assert len(concats_of_relus) == 5 and all(n.endswith("/Relu_Concat") for n in concats_of_relus)


def test_toy_graph_names_are_checked():
    """name_problems finds each kind of bad name (so the tests above can fail)."""
    model = _toy_graph()
    model.graph.node[6].name = "/blk/relu/Conv"  # a Relu named as a Conv
    model.graph.node[7].name = model.graph.node[8].name  # a Concat named as the Conv after it: 2 problems
    model.graph.node[9].name = "Resize"  # unscoped
    problems = name_problems(model.graph)
    assert [p.rpartition(" ")[2] if "say" in p else p.split("' ")[-1] for p in problems] == [
        "Relu", "Concat", "is used twice", "(writing 'up') has no module scope"]
    assert not name_problems(_toy_graph().graph)


# --- the contract, on the trained reference's graph (slow) ----------------------------------------------------

@pytest.fixture(scope="module")
def reference_stages(ref3_model):
    import torch

    from matteconv.export.onnx import exporter

    size = (128, 128)
    traced = exporter.simplify(exporter._torch_export(ref3_model, exporter.dummy_inputs(3, False, size), ["input"],
                                                      11, False))
    x = exporter.parity_image(size)
    with torch.no_grad():
        ref = ref3_model(torch.from_numpy(x)).numpy()
    return _stages(traced, PIPELINE), x, ref


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in REGISTRY])
def test_each_pass_keeps_the_contract_on_the_reference_graph(name, reference_stages, ref3_model):
    from matteconv.export.onnx.exporter import run_float64
    from matteconv.export.parity import judge

    stages, x, ref = reference_stages
    after, _ = _check_contract(BY_NAME[name], stages[name])
    got = ort_session(after.SerializeToString()).run(None, {"input": x})[0]
    judge(got, ref, lambda: run_float64(ref3_model, (x,)), f"after {name}", "reference", "onnxruntime")


# --- the CLI --------------------------------------------------------------------------------------------------

def test_list_passes_and_an_unknown_skip_pass_from_the_cli(tmp_path):
    from typer.testing import CliRunner

    from matteconv.cli import app

    r = CliRunner().invoke(app, ["export", "--list-passes"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and all(p.name in r.output for p in REGISTRY)
    out = tmp_path / "m.onnx"
    r = CliRunner().invoke(app, ["export", str(tmp_path / "missing.pt"), "-o", str(out), "--skip-pass", "nope"])
    assert r.exit_code == 2 and "no ONNX pass named 'nope'" in r.output and not out.exists()


def test_skipping_the_resize_fix_is_refused_for_a_file_atc_may_read(ref3_ckpt, tmp_path):
    """Without fix-resize-modes a file for every runtime would compute its upsamples as asymmetric on Ascend:
    the export names the Resize and writes nothing (before the parity test runs)."""
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint

    with pytest.raises(MatteconvError, match="Resize node '/lr_branch/Resize' uses coordinate_transformation_mode="
                                             "half_pixel"):
        export_onnx(load_checkpoint(ref3_ckpt), tmp_path / "any.onnx", (64, 64), skip=["fix-resize-modes"])
    assert not (tmp_path / "any.onnx").exists()


@pytest.mark.slow
def test_a_file_for_onnxruntime_needs_no_resize_fix(ref3_ckpt, tmp_path):
    from matteconv.export.onnx import export_onnx
    from matteconv.model.checkpoint import load_checkpoint

    res = export_onnx(load_checkpoint(ref3_ckpt), tmp_path / "ort.onnx", (64, 64), runtime="onnxruntime",
                      skip=["fix-resize-modes"])
    # torch's Resizes are half_pixel already (by attribute or by ONNX's default), which onnxruntime runs blocked
    assert "fix-resize-modes" not in res.passes and res.passes["ort-half-pixel"] == 0
    assert res.max_abs_diff <= res.parity_tolerance

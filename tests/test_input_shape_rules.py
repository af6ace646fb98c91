"""A dynamic ONNX through `inspect --input-shape` and `om --input-shape`: every shape rule runs at the shape atc
compiles at, through the Shape -> Gather -> Concat -> Reshape / Expand arithmetic torch writes (the official
MODNet export's SE block), and those ops pass CANN's ONNX operator list."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from matteconv.ascend.build import RuleError, plan_build
from matteconv.ascend.rules import check_model
from matteconv.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory):
    """x[N,3,H,W] -> x * (mean over H,W).view(b, c, 1, 1).expand_as(x) -> depthwise 4x4 stride-4 conv, opset 11
    (Unsqueeze axes as an attribute, as torch 1.7 wrote the official MODNet)."""
    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v, np.int64)))
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        c("i0", 0), c("i1", 1), c("one", [1]),
        helper.make_node("Gather", ["s", "i0"], ["b"], name="gather_b", axis=0),
        helper.make_node("Gather", ["s", "i1"], ["ch"], name="gather_c", axis=0),
        helper.make_node("GlobalAveragePool", ["x"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Unsqueeze", ["b"], ["ub"], name="unsq_b", axes=[0]),
        helper.make_node("Unsqueeze", ["ch"], ["uc"], name="unsq_c", axes=[0]),
        helper.make_node("Concat", ["ub", "uc", "one", "one"], ["shp"], name="concat", axis=0),
        helper.make_node("Reshape", ["f", "shp"], ["r"], name="view"),
        helper.make_node("Shape", ["x"], ["sx"], name="shape_x"),
        helper.make_node("Expand", ["r", "sx"], ["e"], name="expand_as"),
        helper.make_node("Mul", ["x", "e"], ["m"], name="scale"),
        helper.make_node("Conv", ["m", "w"], ["y"], name="down4", group=3, kernel_shape=[4, 4], strides=[4, 4]),
    ]
    w = numpy_helper.from_array(np.full((3, 1, 4, 4), 1 / 16, np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "h4", "w4"])
    model = helper.make_model(helper.make_graph(nodes, "se_down", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 11)])
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("dyn") / "se_down.onnx"
    onnx.save(model, path)
    return path


def test_without_a_shape_the_shape_rules_say_how_to_run_them(dynamic_onnx):
    report = check_model(dynamic_onnx, "atc-onnx")
    assert {r for _, r in report.unchecked} == {"conv.depthwise-buffer", "conv.input-width"}
    assert "pass --input-shape x:1,3,H,W" in report.unchecked_note()
    assert report.violations == []  # Shape, Gather, Unsqueeze, Concat, Reshape, Expand: all on CANN's ONNX list


@pytest.mark.parametrize("w, errors", [(64, []), (252, []), (256, ["conv.depthwise-buffer"])])
def test_with_a_shape_every_rule_runs(dynamic_onnx, w, errors):
    """The depthwise rule at the conv after the Reshape/Expand chain: 4*4*32 + W*(31*4 + 4) <= 32768 holds up
    to W = 252 (32768 exactly) and breaks at 256 (33280)."""
    report = check_model(dynamic_onnx, "atc-onnx", input_shapes={"x": (1, 3, 64, w)})
    assert report.unchecked == []
    assert [v.rule for v in report.errors] == errors
    if errors:
        assert "= 33,280 > 32,768" in report.errors[0].message and report.errors[0].layer == "down4"


def test_inspect_cli_input_shape(dynamic_onnx):
    r = runner.invoke(app, ["inspect", str(dynamic_onnx), "--input-shape", "x:1,3,64,256", "--json"])
    assert r.exit_code == 1, r.output
    out = json.loads(r.output)
    assert out["input_shapes"] == {"x": [1, 3, 64, 256]} and out["rules"]["unchecked"] == []
    assert [v["rule"] for v in out["rules"]["violations"]] == ["conv.depthwise-buffer"]
    r = runner.invoke(app, ["inspect", str(dynamic_onnx), "--input-shape", "x:1,3,64,64", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["rules"]["violations"] == []
    r = runner.invoke(app, ["inspect", str(dynamic_onnx), "--input-shape", "x:1,4,64,64"])  # channels are fixed
    assert r.exit_code == 2 and "contradicts" in r.output and "fixed at ?,3,?,?" in r.output
    r = runner.invoke(app, ["inspect", str(dynamic_onnx), "--input-shape", "image:1,3,64,64"])
    assert r.exit_code == 2 and "not an input of the model (inputs: x)" in r.output
    r = runner.invoke(app, ["inspect", str(dynamic_onnx), "--input-shape", "x:1,3,64"])  # rank differs
    assert r.exit_code == 2 and "x:1,3,64 contradicts" in r.output


def test_om_checks_at_its_input_shape(dynamic_onnx, tmp_path):
    with pytest.raises(RuleError, match="1 Ascend rule violation") as err:
        plan_build(dynamic_onnx, tmp_path / "o", input_shape="x:1,3,64,256", env={"PATH": ""}, system_roots=())
    assert "layer 'down4'" not in err.value.lines[0] and "node 'down4' (Conv)" in err.value.lines[0]
    assert "rule conv.depthwise-buffer" in err.value.lines[0]
    plan = plan_build(dynamic_onnx, tmp_path / "o", input_shape="x:1,3,64,64", env={"PATH": ""}, system_roots=())
    assert "--input_shape=x:1,3,64,64" in plan.argv and plan.rules.unchecked == [] and not plan.warnings


OFFICIAL = __import__("pathlib").Path.home() / ".cache" / "matteconv" / "official" / "modnet.onnx"


@pytest.mark.skipif(not OFFICIAL.is_file(), reason="the official MODNet ONNX is not installed (make install)")
def test_the_official_modnet_onnx_gets_every_check():
    """The wheel's modnet.onnx (dynamic [batch_size, 3, height, width], opset 11): without a shape 179 checks
    cannot run; at atc's --input_shape all do, and none of its 19 op types is off CANN's list."""
    report = check_model(OFFICIAL, "atc-onnx")
    assert len(report.unchecked) == 179 and report.violations == []
    at512 = check_model(OFFICIAL, "atc-onnx", input_shapes={"input": (1, 3, 512, 512)})
    assert at512.unchecked == [] and at512.violations == []
    big = check_model(OFFICIAL, "atc-onnx", input_shapes={"input": (1, 3, 2304, 2304)})
    assert big.unchecked == [] and {v.rule for v in big.errors} == {"conv.depthwise-buffer"}
    assert {v.rule for v in big.warnings} == {"onnx.resize-aicpu"}  # bilinear Resizes with a side > 2048

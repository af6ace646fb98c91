"""Tool discovery, model inspection, Ascend trap checks and the exact atc/omg argv."""
from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from matteconv.aipp import AippSpec, render_config
from matteconv.ascend.build import plan_build
from matteconv.ascend.command import build_argv, display, inspect_model, model_problems
from matteconv.ascend.cann import toolkit_version
from matteconv.ascend.discover import find_any, find_tool
from matteconv.errors import MatteconvError


def conv_model(path: Path, hw=32, opset=13, two_inputs=False, resize_mode=None) -> Path:
    """An identity-ish 1x1 conv on 1x3xHxW (optionally + a 1-channel prev_alpha input, optionally a Resize)."""
    import numpy as np

    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, hw, hw])]
    nodes, inits = [], []
    c_in, src = 3, "image"
    if two_inputs:
        inputs.append(helper.make_tensor_value_info("prev_alpha", TensorProto.FLOAT, [1, 1, hw, hw]))
        nodes.append(helper.make_node("Concat", ["image", "prev_alpha"], ["x4"], axis=1))
        c_in, src = 4, "x4"
    w = np.zeros((1, c_in, 1, 1), np.float32)
    w[0, 0] = 1.0
    inits.append(helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()))
    nodes.append(helper.make_node("Conv", [src, "w"], ["y"], name="conv"))
    out = "y"
    if resize_mode:
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2]))
        nodes.append(helper.make_node("Resize", ["y", "", "scales"], ["z"], name="up", mode="linear",
                                      coordinate_transformation_mode=resize_mode))
        out = "z"
    size = hw * 2 if resize_mode else hw
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT,
                                                                                  [1, 1, size, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


PROTOTXT = """name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 32 dim: 32 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 1 kernel_size: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "sig" type: "Sigmoid" bottom: "conv1" top: "%s" }
"""


def caffe_model(d: Path, top="sig") -> Path:
    p = d / "tiny.prototxt"
    p.write_text(PROTOTXT % top)
    (d / "tiny.caffemodel").write_bytes(b"\0")
    return p


def exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


# --- discovery ------------------------------------------------------------------------------------------------

def test_discovery_order(tmp_path):
    none = dict(system_roots=())
    assert find_tool("atc", {"PATH": ""}, **none) is None
    home = tmp_path / "home"
    h = exe(home / "Ascend/ascend-toolkit/latest/bin/atc")
    assert find_tool("atc", {"HOME": str(home)}, **none).path == h
    sysroot = tmp_path / "usr_local"
    s = exe(sysroot / "atc/bin/atc")  # older CANN layout
    assert find_tool("atc", {"HOME": str(home)}, system_roots=(str(sysroot),)).path == s
    hp = exe(tmp_path / "home_path/bin/atc")
    assert find_tool("atc", {"HOME": str(home), "ASCEND_HOME_PATH": str(tmp_path / "home_path")}, **none).path == hp
    tk = exe(tmp_path / "tk/bin/atc")
    env = {"HOME": str(home), "ASCEND_HOME_PATH": str(tmp_path / "home_path"), "ASCEND_TOOLKIT_HOME": str(tmp_path / "tk")}
    found = find_tool("atc", env, **none)
    assert found.path == tk and found.source == "$ASCEND_TOOLKIT_HOME"
    p = exe(tmp_path / "bin dir/atc")
    assert find_tool("atc", {**env, "PATH": str(tmp_path / "bin dir")}, **none).path == p
    # not executable: skipped
    (tmp_path / "noexec").mkdir()
    (tmp_path / "noexec/atc").write_text("x")
    assert find_tool("atc", {**env, "PATH": str(tmp_path / "noexec")}, **none).path == tk


def test_omg_from_ddk_and_version(tmp_path):
    assert find_tool("omg", {"PATH": ""}, system_roots=()) is None
    omg = exe(tmp_path / "ddk/uihost/bin/omg")
    t = find_tool("omg", {"DDK_HOME": str(tmp_path / "ddk")}, system_roots=())
    assert t.path == omg and t.source == "$DDK_HOME"
    assert find_any(None, {"DDK_HOME": str(tmp_path / "ddk")}, system_roots=()).name == "omg"
    assert toolkit_version(t).version is None
    (tmp_path / "ddk/uihost/version.info").write_text("Version=1.32.0.B080\n")
    assert toolkit_version(t).version == "1.32.0.B080"


# --- argv -----------------------------------------------------------------------------------------------------

def test_onnx_argv(tmp_path):
    info = inspect_model(conv_model(tmp_path / "m.onnx"))
    argv = build_argv("atc", "/x/atc", info, tmp_path / "out", tmp_path / "a.cfg", "Ascend310")
    assert argv == ["/x/atc", "--framework=5", f"--model={tmp_path / 'm.onnx'}", "--input_shape=image:1,3,32,32",
                    "--input_format=NCHW", f"--insert_op_conf={tmp_path / 'a.cfg'}", "--soc_version=Ascend310",
                    f"--output={tmp_path / 'out'}", "--log=error"]
    two = inspect_model(conv_model(tmp_path / "t.onnx", two_inputs=True))
    assert "--input_shape=image:1,3,32,32;prev_alpha:1,1,32,32" in build_argv("atc", "atc", two, "o")
    assert model_problems(info, "atc") == []
    with pytest.raises(MatteconvError, match="omg .* converts Caffe only"):
        build_argv("omg", "omg", info, "o")
    assert "omg (old DDK) converts Caffe or TensorFlow only" in model_problems(info, "omg")[0]


def test_caffe_argv_and_omg(tmp_path):
    info = inspect_model(caffe_model(tmp_path))
    assert info.inputs == [("data", (1, 3, 32, 32))] and info.weight == tmp_path / "tiny.caffemodel"
    argv = build_argv("atc", "atc", info, "o", "a.cfg", "Ascend310")
    assert argv[1:4] == ["--framework=0", f"--model={tmp_path / 'tiny.prototxt'}",
                         f"--weight={tmp_path / 'tiny.caffemodel'}"]
    assert "--input_format=NCHW" not in argv
    omg = build_argv("omg", "omg", info, "o", "a.cfg")
    assert omg == ["omg", "--framework=0", f"--model={tmp_path / 'tiny.prototxt'}",
                   f"--weight={tmp_path / 'tiny.caffemodel'}", "--insert_op_conf=a.cfg", "--output=o"]
    assert model_problems(info, "omg") == []  # in-place ReLU (top == bottom) is fine
    (tmp_path / "tiny.caffemodel").unlink()
    with pytest.raises(MatteconvError, match="tiny.caffemodel not found beside it"):
        inspect_model(tmp_path / "tiny.prototxt")


def test_omg_top_name_trap(tmp_path):
    info = inspect_model(caffe_model(tmp_path, top="prob"))
    probs = model_problems(info, "omg")
    assert len(probs) == 1 and "layer 'sig' (Sigmoid) has top 'prob': OMG requires top == layer name" in probs[0]
    assert model_problems(info, "atc") == []


def test_layer_types_come_from_the_export_targets(tmp_path):
    """atc takes the `ascend` layer table, omg the `ddk` one: MVN passes atc, and omg names it."""
    p = tmp_path / "mvn.prototxt"
    p.write_text(PROTOTXT.replace('type: "Sigmoid"', 'type: "MVN"') % "sig")
    (tmp_path / "mvn.caffemodel").write_bytes(b"\0")
    info = inspect_model(p)
    assert model_problems(info, "atc") == []
    probs = model_problems(info, "omg")
    assert len(probs) == 1 and probs[0].startswith(f"{p}: layer 'sig' (MVN) is not in the `ddk` layer set")
    assert "[rule omg.layer-type: https://support.huaweicloud.com/" in probs[0]
    assert model_problems(inspect_model(conv_model(tmp_path / "m.onnx")), "atc") == []


# --- traps ----------------------------------------------------------------------------------------------------

def test_opset_trap(tmp_path):
    for opset, bad in [(10, True), (11, False), (15, False), (16, True), (18, True)]:
        info = inspect_model(conv_model(tmp_path / f"o{opset}.onnx", opset=opset))
        probs = model_problems(info, "atc")
        assert bool(probs) == bad, (opset, probs)
        if bad:
            assert f"ONNX opset {opset} is outside 11..15" in probs[0]


def test_resize_trap(tmp_path):
    bad = inspect_model(conv_model(tmp_path / "hp.onnx", resize_mode="half_pixel"))
    probs = model_problems(bad, "atc")
    assert len(probs) == 1 and "node 'up' (Resize) uses coordinate_transformation_mode='half_pixel'" in probs[0]
    assert "asymmetric" in probs[0]
    for ok in ("pytorch_half_pixel", "align_corners"):
        assert model_problems(inspect_model(conv_model(tmp_path / f"{ok}.onnx", resize_mode=ok)), "atc") == []
    assert model_problems(inspect_model(conv_model(tmp_path / "as.onnx", resize_mode="asymmetric")), "atc")


def test_plan_checks_aipp_against_model(tmp_path):
    model = conv_model(tmp_path / "m.onnx", hw=64)
    cfg = tmp_path / "a.cfg"
    cfg.write_text(render_config(AippSpec("nv21", (32, 32))))
    with pytest.raises(MatteconvError, match=r"a.cfg:10: AIPP src_image_size 32x32 \(WxH\) does not match model "
                                             r"input 'image' 64x64"):
        plan_build(model, tmp_path / "out", cfg, env={"PATH": ""}, system_roots=())
    with pytest.raises(MatteconvError, match="ONNX opset 18 is outside"):
        plan_build(conv_model(tmp_path / "o18.onnx", opset=18), tmp_path / "o", env={"PATH": ""}, system_roots=())
    cfg.write_text(render_config(AippSpec("nv21", (64, 64))))
    plan = plan_build(model, tmp_path / "out dir/m", cfg, env={"PATH": ""}, system_roots=())
    assert plan.tool is None and plan.om == tmp_path / "out dir/m.om"
    assert f"'--output={tmp_path}/out dir/m'" in display(plan.argv)
    plan = plan_build(model, tmp_path / "o.om", cfg, input_shape="image:1,3,64,64", env={"PATH": ""}, system_roots=())
    assert "--input_shape=image:1,3,64,64" in plan.argv and plan.argv[-2] == f"--output={tmp_path / 'o'}"
    with pytest.raises(MatteconvError, match="--input-shape names foo not among the model's inputs \\(image\\)"):
        plan_build(model, tmp_path / "o", cfg, input_shape="foo:1,3,64,64", env={"PATH": ""}, system_roots=())


def test_omg_path_characters_are_warned(tmp_path, monkeypatch):
    """The DDK documents only letters, digits, '_' in omg model paths (and '.' in file names): warn, still plan."""
    from matteconv.ascend.command import omg_path_warnings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok_dir").mkdir()
    good = caffe_model(tmp_path / "ok_dir")
    plan = plan_build(Path("ok_dir") / good.name, "out", tool="omg", env={"PATH": ""}, system_roots=())
    assert plan.tool_name == "omg" and plan.warnings == []
    (tmp_path / "my models").mkdir()
    bad = caffe_model(tmp_path / "my models")
    plan = plan_build(Path("my models") / bad.name, "out", tool="omg", env={"PATH": ""}, system_roots=())
    assert len(plan.warnings) == 2 and all("'my models' may be rejected" in w for w in plan.warnings)
    assert omg_path_warnings([Path("a/b-c.prototxt"), Path("../x_1/y.caffemodel"), None]) == [
        "a/b-c.prototxt: omg documents only letters, digits, '_' (and '.' in file names) in model paths; "
        "'b-c.prototxt' may be rejected: rename if omg fails"]
    atc = plan_build(Path("my models") / bad.name, "out", tool="atc", env={"PATH": ""}, system_roots=())
    assert atc.warnings == []  # atc has no such rule

"""Ascend layer/op rules (ascend/rules.py): every rule with one passing and one violating hand-written model, the
numbers the CANN pages give, and how `inspect` and `om` report them (layer, rule, source; om refuses unless
--force). Caffe shapes come from real pycaffe, ONNX shapes from onnx.shape_inference."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

import fakes
from matteconv.aipp import AippSpec, render_config
from matteconv.ascend.build import RuleError, plan_build
from matteconv.ascend.rules import COMPILERS, RULES, check_model, rules_for
from matteconv.cli import app
from matteconv.errors import MatteconvError

NO_TOOLS = {"env": {"PATH": ""}, "system_roots": ()}


def prototxt(tmp_path, name: str, inputs: dict, layers: str, header: str = "") -> "Path":  # noqa: F821
    """Input layers (name -> shape) and `layers`, plus an empty .caffemodel beside it: `om` wants one, the rules
    never read it. A passing and a violating layer share one net, so pycaffe loads it once."""
    p = tmp_path / f"{name}.prototxt"
    text = header + f'name: "{name}"\n'
    for top, shape in inputs.items():
        dims = " ".join(f"dim: {d}" for d in shape)
        text += f'layer {{ name: "{top}" type: "Input" top: "{top}" input_param {{ shape {{ {dims} }} }} }}\n'
    p.write_text(text + layers + "\n")
    p.with_suffix(".caffemodel").write_bytes(b"")
    return p


def conv(name="conv", bottom="data", kind="Convolution", num_output=1, k=3, s=1, group=1, pad=0) -> str:
    return (f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{name}" convolution_param {{ '
            f"num_output: {num_output} kernel_size: {k} stride: {s} group: {group} pad: {pad} bias_term: false }} }}\n")


def onnx_model(tmp_path, name: str, shape, nodes, inits=(), out_shape=None, opset=11):
    """A one-input ONNX graph whose last node writes `y` (inner shapes left to shape inference)."""
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape or shape))],
                              list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def onnx_conv(tmp_path, name, shape, k, s, group):
    c = shape[1]
    w = numpy_helper.from_array(np.zeros((c, c // group, k, k), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[k, k], strides=[s, s], group=group)
    out = [1, c, (shape[2] - k) // s + 1, (shape[3] - k) // s + 1]
    return onnx_model(tmp_path, name, shape, [node], [w], out)


def onnx_resize(tmp_path, name, shape, mode="pytorch_half_pixel", scale=2.0):
    scales = numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="linear",
                            coordinate_transformation_mode=mode)
    out = [*shape[:2], int(shape[2] * scale), int(shape[3] * scale)]
    return onnx_model(tmp_path, name, shape, [node], [scales], out, opset=13)  # 11 requires a roi input


def rule_hits(path, compiler, rule):
    report = check_model(path, compiler)
    assert not report.unchecked, report.unchecked  # every rule really ran: shapes were known
    return [v for v in report.violations if v.rule == rule]


# --- every rule: one passing and one violating model ------------------------------------------------------------

IMG = {"data": (1, 3, 8, 8)}


def test_caffe_layer_type(tmp_path):
    """atc's table, not our export's: BNLL (on CANN's page) and Dropout (dropped) pass, Silence and a lower-case
    type do not, each with atc's error code and the source of the row."""
    p = prototxt(tmp_path, "types", IMG, 'layer { name: "n" type: "MVN" bottom: "data" top: "n" }\n'
                 'layer { name: "b" type: "BNLL" bottom: "data" top: "b" }\n'
                 'layer { name: "d" type: "Dropout" bottom: "b" top: "b" }\n'
                 'layer { name: "s" type: "Silence" bottom: "n" }\n'
                 'layer { name: "r" type: "relu" bottom: "b" top: "r" }')
    s, r = rule_hits(p, "atc-caffe", "caffe.layer-type")
    assert (s.layer, s.type, s.severity) == ("s", "Silence", "error") and "E11009" in s.message
    assert "caffe_parser.cc" in s.source and "operatorlist_00098" in s.source
    assert r.type == "relu" and "`ascend` layer set" in r.message and "did you mean 'ReLU'" in r.message


def test_caffe_upsample_scale_is_a_value_factor_on_ascend(tmp_path):
    """darknet's `scale: 2` (the size) is a factor on every value for atc; `scale: 1 stride: 2` is the x2 resize.
    Checked from the text: `stride` is Ascend's field, not in our fork's caffe.proto."""
    from matteconv.ascend.ops import caffe_ops
    from matteconv.ascend.rules import check_ops

    p = prototxt(tmp_path, "up", IMG, 'layer { name: "dark" type: "Upsample" bottom: "data" top: "dark" '
                 'upsample_param { scale: 2 } }\n'
                 'layer { name: "asc" type: "Upsample" bottom: "data" top: "asc" # scale: 2 in a comment\n'
                 '  upsample_param { scale: 1 stride: 2 } }\n'
                 'layer { name: "both" type: "Upsample" bottom: "data" top: "both" '
                 'upsample_param { scale: 3 stride: 2 } }')
    report = check_ops(caffe_ops(p, {}, "not needed"), "atc-caffe")
    got = {v.layer: v for v in report.violations if v.rule == "caffe.upsample-scale"}
    assert set(got) == {"dark", "both"} and all(v.severity == "warning" for v in got.values())
    assert "scale: 1 stride: 2" in got["dark"].message and "multiplies every value by it" in got["both"].message
    assert "atlasatc_16_0048" in got["dark"].source and report.errors == []


def test_omg_layer_type_uses_the_ddk_table(tmp_path):
    p = prototxt(tmp_path, "relus", IMG, 'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'
                 'layer { name: "r6" type: "ReLU6" bottom: "r" top: "r6" }')
    (v,) = rule_hits(p, "omg", "omg.layer-type")  # ReLU passes
    assert v.type == "ReLU6" and "export with --target ddk" in v.message and "hilens_02_0059" in v.source
    assert rule_hits(p, "atc-caffe", "caffe.layer-type") == []  # atc takes ReLU6


def test_omg_top_name(tmp_path):
    p = prototxt(tmp_path, "tops", IMG, conv("c1", k=1) + conv("c2", "c1", k=1).replace('top: "c2"', 'top: "out"')
                 + 'layer { name: "relu" type: "ReLU" bottom: "out" top: "out" }')
    (v,) = rule_hits(p, "omg", "omg.top-name")  # c1 (top == name) and the in-place ReLU pass
    assert v.layer == "c2" and "has top 'out'" in v.message and "atlasmcg_05_c30_0004" in v.source


def test_onnx_op_type_is_a_warning(tmp_path):
    ok = onnx_model(tmp_path, "relu", (1, 3, 8, 8), [helper.make_node("Relu", ["x"], ["y"], name="r")])
    odd = onnx_model(tmp_path, "bern", (1, 3, 8, 8), [helper.make_node("Bernoulli", ["x"], ["y"], name="b")],
                     opset=15)
    assert rule_hits(ok, "atc-onnx", "onnx.op-type") == []
    (v,) = rule_hits(odd, "atc-onnx", "onnx.op-type")
    assert v.severity == "warning" and v.type == "Bernoulli" and "operatorlist_00176" in v.source
    assert check_model(odd, "atc-onnx").errors == []


def test_onnx_op_list_is_cann_s_not_our_exports():
    """The official MODNet export's shape arithmetic (Shape, Gather, Expand, ConstantOfShape...) is on CANN's
    ONNX list; every op our exporter writes is too; the pages' spellings map to ONNX op types."""
    from matteconv.ascend import onnx_oplist
    from matteconv.ascend.rules import ONNX_OPS

    for op in ("Shape", "Gather", "Expand", "ConstantOfShape", "Cast", "Floor", "Div", "Unsqueeze", "Concat",
               "Resize", "Tanh", "ArgMax", "LogSoftmax", "CumSum"):
        assert onnx_oplist.listed(op) == onnx_oplist.CANN80, op
    assert onnx_oplist.listed("AscendDequant") == onnx_oplist.CANN504  # AMCT's deploy op: 5.0.4's page
    assert all(onnx_oplist.listed(op) for op in ONNX_OPS), ONNX_OPS
    assert onnx_oplist.listed("Argmax") is None and onnx_oplist.listed("Upsample") is None
    assert len(onnx_oplist.LIST_80) == 160 and len(set(onnx_oplist.LIST_80)) == 160


@pytest.mark.parametrize("width, need", [(320, 41_472), (384, 49_664), (512, 66_048)])
def test_depthwise_buffer_k4s4_downsample_breaks_it(tmp_path, width, need):
    """The issue's numbers: our old 1/4 downsample (k4 s4, group 3 on the full image) at 320/384/512; as a
    dense (group 1) convolution, the fix, it is not depthwise."""
    p = prototxt(tmp_path, f"down{width}", {"data": (1, 3, width, width)},
                 conv("down", num_output=3, k=4, s=4, group=3) + conv("dense", num_output=3, k=4, s=4))
    (v,) = rule_hits(p, "atc-caffe", "conv.depthwise-buffer")
    assert v.layer == "down" and f"4*4*32 + {width}*(31*4 + 4) = {need:,} > 32,768" in v.message
    assert "operatorlist_0263" in v.source
    (o,) = rule_hits(onnx_conv(tmp_path, f"down{width}", (1, 3, width, width), 4, 4, 3), "atc-onnx",
                     "conv.depthwise-buffer")
    assert f"= {need:,}" in o.message


def test_depthwise_buffer_largest_backbone_layer_fits(tmp_path):
    """3x3 stride-2 depthwise on width 192 (the largest in the 384 export): 288 + 192*65 = 12,768."""
    p = prototxt(tmp_path, "dw", {"data": (1, 32, 192, 192)}, conv("dw", num_output=32, k=3, s=2, group=32, pad=1))
    assert rule_hits(p, "atc-caffe", "conv.depthwise-buffer") == []
    assert rule_hits(onnx_conv(tmp_path, "dw", (1, 32, 192, 192), 3, 2, 32), "atc-onnx",
                     "conv.depthwise-buffer") == []


def test_filter_size(tmp_path):
    p = prototxt(tmp_path, "k", {"data": (1, 1, 256, 256)}, conv("k255", k=255) + conv("k256", k=256))
    (v,) = rule_hits(p, "atc-caffe", "conv.filter-size")
    assert v.layer == "k256" and "256x256 filter" in v.message


def test_conv_input_width(tmp_path):
    p = prototxt(tmp_path, "w", {"a": (1, 1, 2, 4096), "b": (1, 1, 2, 4100)}, conv("ok", "a", k=1)
                 + conv("wide", "b", k=1))
    (v,) = rule_hits(p, "atc-caffe", "conv.input-width")
    assert v.layer == "wide" and "input width 4100 > 4096" in v.message


def test_deconv_stride(tmp_path):
    p = prototxt(tmp_path, "s", {"data": (1, 1, 4, 4)}, conv("s15", kind="Deconvolution", k=15, s=15)
                 + conv("s16", kind="Deconvolution", k=16, s=16))
    (v,) = rule_hits(p, "atc-caffe", "deconv.stride")  # 15*15 = 225 < 256 passes
    assert v.layer == "s16" and "stride_h*stride_w = 256 is outside [1, 256)" in v.message
    assert "operatorlist_00112" in v.source


def test_deconv_size(tmp_path):
    p = prototxt(tmp_path, "d", {"a": (1, 1, 4, 2048), "b": (1, 1, 4, 2100)},
                 conv("ok", "a", kind="Deconvolution", k=4, s=2, pad=1)
                 + conv("wide", "b", kind="Deconvolution", k=4, s=2, pad=1))
    (v,) = rule_hits(p, "atc-caffe", "deconv.size")  # Wy*stride_w = 4096 passes
    assert v.layer == "wide" and "Wy*stride_w = 2100*2 = 4200" in v.message and "Hy" not in v.message


def test_onnx_resize_coordinates(tmp_path):
    assert rule_hits(onnx_resize(tmp_path, "php", (1, 1, 8, 8)), "atc-onnx", "onnx.resize-coordinates") == []
    (v,) = rule_hits(onnx_resize(tmp_path, "hp", (1, 1, 8, 8), "half_pixel"), "atc-onnx", "onnx.resize-coordinates")
    assert v.severity == "error" and "computes that as asymmetric" in v.message


def test_onnx_resize_on_ai_cpu_is_a_warning(tmp_path):
    ok = onnx_resize(tmp_path, "r1024", (1, 1, 8, 1024))  # output width exactly 2048
    big = onnx_resize(tmp_path, "r1100", (1, 1, 8, 1100))
    assert rule_hits(ok, "atc-onnx", "onnx.resize-aicpu") == []
    (v,) = rule_hits(big, "atc-onnx", "onnx.resize-aicpu")
    assert v.severity == "warning" and "side of 2200 > 2048" in v.message


def test_aipp_yuv420sp_size_uses_the_model_size_when_the_config_says_0(tmp_path):
    """src_image_size 0 means the model's size: an odd model width is caught where config meets model."""
    odd = onnx_model(tmp_path, "odd", (1, 3, 32, 31), [helper.make_node("Relu", ["x"], ["y"], name="r")])
    even = onnx_model(tmp_path, "even", (1, 3, 32, 32), [helper.make_node("Relu", ["x"], ["y"], name="r")])
    cfg = tmp_path / "nv12.cfg"
    text = render_config(AippSpec("nv12", (32, 32)))
    cfg.write_text(text.replace("src_image_size_w : 32", "src_image_size_w : 0")
                   .replace("src_image_size_h : 32", "src_image_size_h : 0"))
    assert "src_image_size_w : 0" in cfg.read_text()
    assert plan_build(even, tmp_path / "e", cfg, **NO_TOOLS).aipp == cfg
    with pytest.raises(MatteconvError, match=r"YUV420SP_U8 source 31x32 .* must be even, with W in \[2, 4096\]"):
        plan_build(odd, tmp_path / "o", cfg, **NO_TOOLS)


def test_rule_table_is_complete():
    """Every rule has an id, a source URL and either a check or the code that enforces it; each compiler has
    its layer-type rule."""
    assert len({r.id for r in RULES}) == len(RULES)
    for r in RULES:
        assert r.source.startswith("https://") and r.severity in ("error", "warning")
        assert (r.test is None) == bool(r.enforced_by), r.id
        assert set(r.compilers) <= set(COMPILERS)
    assert {r.id for r in rules_for("omg")} == {"omg.layer-type", "omg.top-name", "aipp.yuv420sp-size"}
    assert "caffe.layer-type" in {r.id for r in rules_for("atc-caffe")}


def test_unknown_shapes_are_reported_not_passed(tmp_path):
    """A net pycaffe cannot load (unknown layer type): shape rules are listed as not run. Swish is neither in our
    pycaffe nor in CANN's Caffe list; Interp is in CANN's list (atc takes it) but not in our pycaffe."""
    p = prototxt(tmp_path, "swish", IMG, conv("dw", num_output=3, group=3)
                 + 'layer { name: "up" type: "Interp" bottom: "dw" top: "up" }'
                 + 'layer { name: "act" type: "Swish" bottom: "up" top: "act" }')
    report = check_model(p, "atc-caffe")
    assert ("dw", "conv.depthwise-buffer") in report.unchecked and "Unknown layer type: Interp" in report.shapes_error
    assert [v.layer for v in report.errors] == ["act"]  # the type rule needs no shapes
    assert "not run: blob shapes are unknown" in report.unchecked_note()


# --- exported models ----------------------------------------------------------------------------------------------

def test_our_onnx_export_passes_every_atc_rule(ref3_onnx):
    """The 512x512 export (every ONNX rule is monotone in the feature-map size, so 320 and 384 follow)."""
    report = check_model(ref3_onnx, "atc-onnx")
    assert report.violations == [] and report.unchecked == []


# --- inspect and om -----------------------------------------------------------------------------------------------

def test_inspect_onnx_and_prototxt_show_violations(tmp_path):
    bad = onnx_conv(tmp_path, "down", (1, 3, 384, 384), 4, 4, 3)
    r = CliRunner().invoke(app, ["inspect", str(bad), "--json"])
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout)
    (v,) = out["rules"]["violations"]
    assert (v["layer"], v["rule"]) == ("conv", "conv.depthwise-buffer") and "49,664" in v["message"]
    assert v["source"].endswith("operatorlist_0263.html")
    assert out["counts"] == {"Conv": 1}
    r = CliRunner().invoke(app, ["inspect", str(bad), "--target", "ddk"])
    assert r.exit_code == 2 and "ONNX model goes through atc only" in r.output
    p = prototxt(tmp_path, "down", {"data": (1, 3, 384, 384)}, conv("down", num_output=3, k=4, s=4, group=3))
    r = CliRunner().invoke(app, ["inspect", str(p), "--target", "ascend"])
    assert r.exit_code == 1 and "conv.depthwise-buffer" in r.stdout and "49,664" in r.stdout
    r = CliRunner().invoke(app, ["inspect", str(p), "--target", "bvlc", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["rules"] is None  # BVLC Caffe: no Ascend compiler


@pytest.fixture()
def fake_atc(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    record = tmp_path / "argv.json"
    fakes.use_env(monkeypatch, fakes.env_with_path(bindir, HOME=str(tmp_path / "home"), FAKE_ATC_RECORD=str(record)))
    return fakes.install("atc", bindir), record


def test_om_refuses_a_violation_unless_forced(tmp_path, fake_atc):
    atc, record = fake_atc
    p = prototxt(tmp_path, "down", {"data": (1, 3, 384, 384)}, conv("down", num_output=3, k=4, s=4, group=3))
    r = CliRunner().invoke(app, ["om", str(p), "-o", str(tmp_path / "down")])
    assert r.exit_code == 2 and not record.exists() and not (tmp_path / "down.om").exists()
    assert "layer 'down' (Convolution) is a depthwise 4x4 stride-4 convolution" in r.output
    assert "rule conv.depthwise-buffer" in r.output and "1 Ascend rule violation(s) for atc-caffe" in r.output
    r = CliRunner().invoke(app, ["om", str(p), "-o", str(tmp_path / "down"), "--json"])
    assert r.exit_code == 2 and json.loads(r.stdout)["rules"]["violations"][0]["rule"] == "conv.depthwise-buffer"
    r = CliRunner().invoke(app, ["om", str(p), "-o", str(tmp_path / "down"), "--force"])
    assert r.exit_code == 0, r.output
    assert "ignored (--force)" in r.output and (tmp_path / "down.om").read_bytes().startswith(b"FAKE-OM")
    assert "--framework=0" in json.loads(record.read_text())


def test_om_warnings_do_not_refuse(tmp_path, fake_atc):
    atc, record = fake_atc
    big = onnx_resize(tmp_path, "big", (1, 1, 8, 1100))
    r = CliRunner().invoke(app, ["om", str(big), "-o", str(tmp_path / "big")])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "onnx.resize-aicpu" in r.output


def test_om_omg_names_a_non_ddk_export(tmp_path):
    layers = "\n".join([
        'layer { name: "n1" type: "MVN" bottom: "data" top: "n1" }',
        'layer { name: "r1" type: "ReLU6" bottom: "n1" top: "n1" }',
        'layer { name: "m" type: "Reduction" bottom: "n1" top: "m" reduction_param { operation: MEAN axis: 2 } }'])
    p = prototxt(tmp_path, "asc", IMG, layers, header="# matteconv 0.1.0 Caffe export (target: ascend)\n")
    with pytest.raises(RuleError) as e:
        plan_build(p, tmp_path / "o", tool="omg", **NO_TOOLS)
    msg = str(e.value)
    assert msg.startswith(f"{p}: not a `ddk` export: the old DDK's omg has no MVN, ReLU6, Reduction layers")
    assert "MVN (n1); ReLU6 (r1); Reduction (m)" in msg
    assert msg.endswith("it was exported with --target ascend: export with --target ddk")
    assert len(e.value.lines) == 3
    r = CliRunner().invoke(app, ["om", str(p), "--tool", "omg", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "export with --target ddk" in r.output

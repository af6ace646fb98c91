"""INT8 device model (matteconv.int8): a hand-computed layer, calibration rules, the AMCT config schema, the
switchable emulator and the automatic skip."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from matteconv.int8.calibrate import ActivationObserver, IfmrConfig, act_params, arq_scales, quantize_weight
from matteconv.int8.record import LayerRecord, QuantRecord

IFMR = {"max_percentile": 0.999999, "min_percentile": 0.999999, "search_range_start": 0.7, "search_range_end": 1.3,
        "search_step": 0.01}
W = np.array([[127.0, 50.4], [-25.5 * 2, 127.0 * 2]], np.float32).reshape(2, 2, 1, 1) * np.array(
    [2.0 ** -7, 2.0 ** -7], np.float32).reshape(2, 1, 1, 1)  # channel 1 is [-25.5, 127] * 2^-6
B = np.array([3.3, -1.0], np.float32)


def one_conv_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 1, 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 1, 3])
    node = helper.make_node("Conv", ["input", "w", "b"], ["out"], name="conv", kernel_shape=[1, 1])
    g = helper.make_graph([node], "g", [x], [y], [numpy_helper.from_array(W, "w"), numpy_helper.from_array(B, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)])


def conv_record(scale: float, offset: int) -> QuantRecord:
    layer = LayerRecord("conv", "Conv", 12, [float(s) for s in arq_scales(W, 0, True)], 0, scale, offset)
    return QuantRecord("m.onnx", "0" * 64, "onnx", True, IFMR, ["x"], [layer], 12)


def run(model: onnx.ModelProto, x: np.ndarray, **feeds) -> np.ndarray:
    from matteconv.backends import ort_session

    return ort_session(model.SerializeToString(), 1).run(None, {"input": x, **feeds})[0]


def test_hand_computed_int8_conv_exact():
    """scale_d 0.5, offset 3; weight scales 2^-7 and 2^-6 (ARQ: max|w|/127); everything is a power of two, so the
    result is exact and compared bitwise (same arithmetic whatever the summation order)."""
    from matteconv.int8.emulate import int8_model

    assert arq_scales(W, 0, True).tolist() == [2.0 ** -7, 2.0 ** -6]
    x = np.array([[1.25, 100.0, 0.25], [0.75, -100.0, -1.0]], np.float32).reshape(1, 2, 1, 3)
    # x / 0.5 = [2.5, 200, 0.5 | 1.5, -200, -2] -> round half even [2, 200, 0 | 2, -200, -2] + 3, saturated:
    q = np.array([[5, 127, 3], [5, -128, 1]])
    assert quantize_weight(W, arq_scales(W, 0, True), 0).reshape(2, 2).tolist() == [[127, 50], [-26, 127]]
    # acc = sum (q - 3) * w_q + round(b / (0.5 * sw)): biases 3.3 / 2^-8 = 844.8 -> 845, -1 / 2^-7 = -128
    acc0 = 127 * (q[0] - 3) + 50 * (q[1] - 3) + 845
    acc1 = -26 * (q[0] - 3) + 127 * (q[1] - 3) - 128
    assert acc0.tolist() == [1199, 10043, 745] and acc1.tolist() == [74, -19989, -382]
    # dequantised (x 0.5 * sw), then fp16: 39.23046875 -> 39.21875 (fp16 step 2^-5), -156.1640625 -> -156.125
    expect = np.array([[4.68359375, 39.21875, 2.91015625], [0.578125, -156.125, -2.984375]], np.float32)
    np.testing.assert_array_equal((acc0 * 2.0 ** -8).astype(np.float16), expect[0])
    got = run(int8_model(one_conv_model(), conv_record(0.5, 3)), x)
    np.testing.assert_array_equal(got.reshape(2, 3), expect)


def test_switchable_equals_plain_model():
    """Same ops on the same input: the Where-selected INT8 branch is bitwise the plain INT8 model, the fp16 branch
    bitwise the fp16 emulator."""
    from matteconv.fp16.onnx_emu import fp16_model
    from matteconv.int8.emulate import SWITCH, int8_model

    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, (1, 2, 1, 3)).astype(np.float16).astype(np.float32)
    rec = conv_record(0.05, -7)
    switch = int8_model(one_conv_model(), rec, switchable=True)
    on = run(switch, x, **{SWITCH + "conv": np.array(True)})
    off = run(switch, x, **{SWITCH + "conv": np.array(False)})
    np.testing.assert_array_equal(on, run(int8_model(one_conv_model(), rec), x))
    np.testing.assert_array_equal(off, run(fp16_model(one_conv_model()), x))
    assert np.abs(on - off).max() > 0


def test_activation_params_and_ifmr():
    assert act_params(-1.0, 1.0, with_offset=False) == (1.0 / 127, 0)
    scale, offset = act_params(0.0, 6.0, with_offset=True)  # a ReLU6 output: 0 maps to -128
    assert scale == pytest.approx(6.0 / 255) and offset == -128
    scale, offset = act_params(-1.0, 3.0, with_offset=True)
    assert scale == pytest.approx(4.0 / 255) and offset == -128 + 64  # round(1 / (4/255)) = round(63.75) = 64
    # IFMR on uniform data in [-1, 1] plus one outlier at 50 among 2e6 values: the 0.999999 percentile drops the
    # outlier (2 values beyond it), so the range stays near [-1, 1] instead of [-1, 50]
    data = np.linspace(-1, 1, 2_000_000, dtype=np.float32)
    data[7] = 50.0
    obs = ActivationObserver(data.size, IfmrConfig(with_offset=False))
    obs.add(data[:1_000_000])
    obs.add(data[1_000_000:])
    scale, offset, info = obs.calibrate()
    assert info["clip_max_init"] == pytest.approx(1.0, abs=1e-5) and offset == 0
    assert 0.7 / 127 <= scale <= 1.3 / 127


def test_config_parses_against_schema():
    """The config quantize writes parses against the AMCTConfig schema reconstructed from Huawei's docs, with the
    values of the record; a wrong field or type is refused."""
    from matteconv.errors import MatteconvError
    from matteconv.int8.amct_config import parse_config, render_config

    rec = conv_record(0.5, 3)
    rec.layers.append(LayerRecord("fc", "MatMul", 4, [0.1], 1, 0.2, 0))
    rec.layers.append(LayerRecord("pool", "AveragePool", 0, skip="AveragePool: not emulated"))
    rec.activation_offset = False
    msg = parse_config(render_config(rec, ["AveragePool"]))
    assert list(msg.skip_layers) == ["pool"] and list(msg.skip_layer_types) == ["AveragePool"]
    assert msg.activation_offset is False and msg.batch_num == 1
    assert msg.common_config.arq_quantize.channel_wise is True
    assert msg.common_config.ifmr_quantize.search_step == pytest.approx(0.01)
    assert msg.common_config.ifmr_quantize.max_percentile == pytest.approx(0.999999)
    fc = msg.override_layer_types[0]
    assert fc.layer_type == "MatMul" and fc.calibration_config.arq_quantize.channel_wise is False
    with pytest.raises(MatteconvError, match="no field named"):
        parse_config("activation_offset: true\nskip_layer: \"x\"\n")
    with pytest.raises(MatteconvError, match="valid AMCT"):
        parse_config("batch_num: \"ten\"\n")
    with pytest.raises(MatteconvError, match="required"):
        parse_config("override_layer_types { layer_type: \"Conv\" }\n")


# ---- a tiny MODNet-shaped network (1x3xHxW -> 1x1xHxW) whose middle conv quantizes badly --------------------

class TinyNet(__import__("torch").nn.Module):
    """conv1 -> ReLU -> conv2 -> ReLU -> conv3 -> sigmoid. conv2's channel 0 holds one weight 60x its others, so
    ARQ's per-channel scale (max|w| / 127) rounds that channel's other weights to a few levels: quantizing conv2
    alone moves the matte far more than the rest."""

    def __init__(self):
        import torch
        from torch import nn

        super().__init__()
        self.in_channels = 3
        g = torch.Generator().manual_seed(0)
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), \
            nn.Conv2d(8, 1, 1)
        with torch.no_grad():
            for c in (self.conv1, self.conv2, self.conv3):
                c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.3)
                c.bias.copy_(torch.randn(c.bias.shape, generator=g) * 0.1)
            self.conv2.weight[:, :, 0, 0] = 0.0
            self.conv2.weight[:, 0, 0, 0] = 18.0  # the outlier: every channel's scale becomes 18/127
            self.conv3.weight.mul_(4.0)

    def forward(self, x):
        import torch
        from torch.nn.functional import relu  # F.relu: the Caffe export lowers it (the Caffe twin below)

        return torch.sigmoid(self.conv3(relu(self.conv2(relu(self.conv1(x))))))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(onnx path, golden dir) at 16x16 from three built-in photos (golden alphas in float64)."""
    from conftest import toy_onnx_and_golden

    path, sets = toy_onnx_and_golden(TinyNet().eval(), tmp_path_factory.mktemp("tiny"), (16, 16), 3, ((16, 16),),
                                     name="tiny")
    return path, sets[(16, 16)]


def test_auto_skip_meets_a_tolerance_all_int8_misses(tiny):
    from matteconv.int8.quantize import auto_skip, calibrate, golden_inputs

    path, golden = tiny
    inputs = golden_inputs(golden)
    record = calibrate(path, inputs)
    conv2 = next(r.name for r in record.layers if r.op == "Conv" and "conv2" in r.name)
    # measured: all INT8 0.22 / 0.036; conv2 alone 0.19 / 0.035; with conv2 kept fp16 0.079 / 0.013; fp16 1.9e-3
    tol = {"max_abs": 0.1, "mean_abs": 0.02}
    result = auto_skip(path, record, inputs, tol)
    assert not (result.all_int8_error["max_abs"] <= tol["max_abs"] and
                result.all_int8_error["mean_abs"] <= tol["mean_abs"]), (result.all_int8_error, tol)
    assert result.met and result.error["max_abs"] <= tol["max_abs"] and result.error["mean_abs"] <= tol["mean_abs"]
    assert result.kept_fp16 == [conv2] and result.note == ""
    assert [r.name for r in result.record.skipped] == [conv2]
    # a tolerance the fp16 prediction itself misses: no skip can meet it, said at once (all INT8 and fp16 only)
    strict = {"max_abs": 1e-4, "mean_abs": 1e-5}
    hopeless = auto_skip(path, record, inputs, strict)
    assert not hopeless.met and hopeless.kept_fp16 == [] and hopeless.evaluations == 2
    assert "fp16 prediction itself misses" in hopeless.note
    trade = result.trade()
    assert 0 < trade["kept_macs_share"] < 1 and trade["int8_macs_share"] == pytest.approx(1 - trade["kept_macs_share"])


def quantize_with_standins(tool: str, model, golden, out, tmp_path, monkeypatch):
    """`matteconv quantize MODEL --tolerance 0.1/0.02 --json` in-process with the stand-in `tool` (amct_onnx or
    amct_caffe: one script) and atc alone on PATH. Returns (tool path, JSON result, argv the tool received)."""
    import json

    from typer.testing import CliRunner

    import fakes
    from matteconv.cli import app

    bindir, argv_file = tmp_path / "bin", tmp_path / "amct_argv.json"
    amct = fakes.install("amct_onnx", bindir, as_name=tool)
    fakes.install("atc", bindir)
    fakes.use_env(monkeypatch, fakes.env_with_path(bindir, HOME=str(tmp_path / "home"),
                                                   FAKE_AMCT_RECORD=str(argv_file)))
    r = CliRunner().invoke(app, ["quantize", str(model), "--golden", str(golden), "-o", str(out),
                                 "--tolerance", "0.1/0.02", "--json"])
    assert r.exit_code == 0, r.output
    return amct, json.loads(r.output), json.loads(argv_file.read_text())


@pytest.mark.slow  # two stand-in tools in child processes: ~6 s
def test_quantize_runs_standin_amct_into_om(tiny, tmp_path, monkeypatch):
    """`matteconv quantize` end to end with the stand-in amct_onnx and atc: the exact AMCT argv, calibration data
    AMCT accepts, its deploy model handed to `om`, and a build record that says INT8."""
    import json

    import fakes
    from matteconv.int8.amct_config import parse_config

    path, golden = tiny
    out = tmp_path / "q out"
    amct, res, argv = quantize_with_standins("amct_onnx", path, golden, out, tmp_path, monkeypatch)
    data = out / "calibration" / "input"
    assert argv == [str(amct), "calibration", f"--model={path}", argv[3], "--input_shape=input:1,3,16,16",
                    f"--data_dir={data}", "--data_types=float32", f"--calibration_config={out / 'amct_config.cfg'}",
                    "--batch_num=3"]
    assert argv[3].startswith("--save_path=") and argv[3].endswith("/tiny")  # AMCT writes into a private folder
    assert sorted(p.name for p in data.iterdir()) == ["00000.bin", "00001.bin", "00002.bin"]
    cfg = parse_config((out / "amct_config.cfg").read_text())
    assert list(cfg.skip_layers) == ["/conv2/Conv"] and cfg.activation_offset is True
    deploy = onnx.load(str(out / "tiny_deploy_model.onnx"))
    assert sum(n.op_type == "AscendQuant" for n in deploy.graph.node) == 2  # conv1, conv3; conv2 kept fp16
    assert (out / "tiny_fake_quant_model.onnx").is_file()
    build = json.loads((out / "tiny_int8.build.json").read_text())
    assert f"--model={out / 'tiny_deploy_model.onnx'}" in build["argv"]
    assert build["int8"]["source_model"] == str(path.resolve()) and build["int8"]["record"].endswith("quant.json")
    assert res["om"] == str(out / "tiny_int8.om") and res["trade"]["met"] is True
    assert res["predicted_int8"]["max_abs"] <= 0.1
    # the om stage of that .om is predicted by the INT8 device model (stand-in device: the INT8 emulator itself)
    from matteconv.verify.ascend_stages import om_stage
    from matteconv.verify.golden import load_golden
    from matteconv.verify.run import verify

    fakes.install("msame_onnx", amct.parent, as_name="msame")
    gset = load_golden(golden)
    result = verify(gset, [om_stage(out / "tiny_int8.om", gset)]).results[0]
    assert result.status == "passed", result.reason
    assert result.predicted["predicted_max_abs"] == pytest.approx(res["predicted_int8"]["max_abs"], rel=1e-6)
    assert result.worst["max_abs"] == pytest.approx(result.predicted["predicted_max_abs"], rel=1e-6)
    monkeypatch.setenv("FAKE_DEVICE_SCALE", "1.3")  # a device that computes something else fails
    assert verify(gset, [om_stage(out / "tiny_int8.om", gset)]).results[0].status == "failed"


def test_quantize_without_amct_prints_the_command(tiny, tmp_path, monkeypatch):
    import fakes
    from matteconv.int8.job import quantize_job

    path, golden = tiny
    fakes.use_env(monkeypatch, fakes.env_with_path(tmp_path / "empty", HOME=str(tmp_path / "home")))
    res = quantize_job(path, golden, tmp_path / "q", activation_offset=False)
    assert res.amct_status.startswith("skipped: amct_onnx not found") and res.om is None
    assert res.command.startswith("amct_onnx calibration --model=")
    assert (tmp_path / "q" / "amct_command.txt").read_text().strip() == res.command
    assert all(r.act_offset == 0 for r in res.record.quantized)  # --no-activation-offset: symmetric
    assert res.predicted["max_abs"] > res.fp16["max_abs"]
    # --images: calibration on other pictures (prepared to the model size), judged on the golden set
    import cv2

    pics = tmp_path / "pics"
    pics.mkdir()
    for name, colour in (("a", 40), ("b", 200)):
        img = np.full((30, 40, 3), colour, np.uint8)
        img[5:20, 10:30] = 255 - colour
        cv2.imwrite(str(pics / f"{name}.png"), img)
    res2 = quantize_job(path, golden, tmp_path / "q2", images=pics)
    assert res2.record.inputs == ["a", "b"] and len(list((tmp_path / "q2" / "calibration" / "input").iterdir())) == 2
    assert [r.act_scale for r in res2.record.quantized] != [r.act_scale for r in res.record.quantized]


def test_verify_int8_stage_judged_at_int8_tolerance(tiny):
    """verify's int8-onnx stage: the INT8 prediction with the record quantize wrote, at the `int8` tolerance."""
    from matteconv.int8.quantize import calibrate, errors, golden_inputs, predict
    from matteconv.verify.golden import INT8_PREDICTED, load_golden
    from matteconv.verify.int8_stages import int8_stage
    from matteconv.verify.run import verify
    from matteconv.verify.stages import onnx_stage

    path, golden = tiny
    gset = load_golden(golden)
    rec = calibrate(path, golden_inputs(golden)).with_skips(["/conv2/Conv", "/conv3/Conv"], "test")
    rec_path = path.parent / "tiny.quant.json"
    rec.save(rec_path)
    onnx_s = onnx_stage(path, gset)
    stage = int8_stage(onnx_s, gset, rec_path)
    result = verify(gset, [onnx_s, stage]).results[1]
    assert result.name == "int8-onnx" and result.tolerance == INT8_PREDICTED
    want = errors(predict(path, rec, golden_inputs(golden).xs), golden_inputs(golden).goldens)
    assert result.worst["max_abs"] == pytest.approx(want["max_abs"], rel=1e-6)
    assert result.status == ("passed" if want["max_abs"] <= 0.1 and want["mean_abs"] <= 2e-3 else "failed")
    other = path.parent / "other.quant.json"
    rec.model_sha256 = "0" * 64
    rec.save(other)
    assert "made for another model" in int8_stage(onnx_s, gset, other).error



def test_compare_int8_ranks_the_bad_layer_first(tiny):
    """compare --precision int8: conv2, whose outlier weight coarsens ARQ's scale, adds the most; the CLI refuses a
    candidate that is neither ONNX nor a Caffe prototxt."""
    from typer.testing import CliRunner

    from matteconv.cli import app
    from matteconv.verify.int8_compare import compare_int8

    path, golden = tiny
    rep = compare_int8(None, path, golden)  # the tiny net is no MODNet checkpoint: no module paths
    assert [r.layer for r in rep.rows][0] == "/conv2/Conv" and len(rep.rows) == 3
    assert rep.rows[0].added_max > rep.rows[1].added_max > 0
    assert rep.all_int8["max_abs"] > rep.fp16["max_abs"]
    assert sum(r.macs_share for r in rep.rows) == pytest.approx(1.0)
    r = CliRunner().invoke(app, ["compare", str(path), str(path.with_suffix(".caffemodel")), "--precision", "int8"])
    assert r.exit_code == 2 and "ONNX or Caffe CANDIDATE" in r.output


# ---- the Caffe `ascend` path: the same device model on a pycaffe net ------------------------------------------

def write_caffe(model, shape: tuple[int, ...], stem, arg: str = "x") -> "Path":
    """`model` (forward argument `arg`) converted as the Caffe `ascend` export converts (export.caffe.convert),
    written beside `stem`; its input is named `input`."""
    from matteconv.export.caffe.convert import convert
    from matteconv.export.caffe.writer import write_caffemodel, write_prototxt

    net = convert(model, {arg: shape}, "ascend")
    write_prototxt(stem.with_suffix(".prototxt"), net, ["test"])
    write_caffemodel(stem.with_suffix(".caffemodel"), net)
    return stem.with_suffix(".prototxt")


@pytest.mark.slow  # one pycaffe worker process: 1-8 s with the load of this shared machine
def test_hand_computed_int8_conv_caffe_exact(tmp_path):
    """The layer of test_hand_computed_int8_conv_exact as a Caffe Convolution under the pycaffe INT8 emulator: the
    same numbers, bitwise (powers of two and small integers: exact in float32 whatever the summation order)."""
    import torch

    from matteconv.int8.caffe_emu import Int8CaffeBackend
    from matteconv.int8.rules import plan_layers

    conv = torch.nn.Conv2d(2, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(W))
        conv.bias.copy_(torch.from_numpy(B))
    proto = write_caffe(torch.nn.Sequential(conv).eval(), (1, 2, 1, 3), tmp_path / "one", "input")
    (layer,) = plan_layers(proto).layers
    rec = conv_record(0.5, 3)
    rec.layers[0].name, rec.framework = layer.name, "caffe"
    x = np.array([[1.25, 100.0, 0.25], [0.75, -100.0, -1.0]], np.float32).reshape(1, 2, 1, 3)
    expect = np.array([[4.68359375, 39.21875, 2.91015625], [0.578125, -156.125, -2.984375]], np.float32)
    with Int8CaffeBackend(proto, rec) as backend:
        np.testing.assert_array_equal(backend.run(x).reshape(2, 3), expect)
        # the same layer switched off: the fp16 device model (weights and input on the fp16 grid, fp32 sum, fp16)
        w16, x16 = W.astype(np.float16).astype(np.float64), x.astype(np.float16).astype(np.float64)
        fp16 = (np.einsum("oi,iw->ow", w16.reshape(2, 2), x16.reshape(2, 3))
                + B.astype(np.float16).astype(np.float64)[:, None]).astype(np.float16)
        np.testing.assert_allclose(backend.run(x, set()).reshape(2, 3), fp16, rtol=2.0 ** -10)


@pytest.fixture(scope="module")
def tiny_caffe(tiny, tmp_path_factory):
    """TinyNet as a Caffe `ascend` export at 16x16 (same weights as the ONNX twin of `tiny`)."""
    return write_caffe(TinyNet().eval(), (1, 3, 16, 16), tmp_path_factory.mktemp("tiny_caffe") / "tiny")


@pytest.mark.slow  # several pycaffe workers (calibration, prediction, the skip, verify): ~10 s
def test_caffe_int8_matches_onnx_twin(tiny, tiny_caffe):
    """Calibration, prediction, the automatic skip and verify's int8-caffe stage on the Caffe export agree with the
    ONNX twin of the same network: same ARQ scales (same float32 weights, same float64 arithmetic: exact), IFMR
    activation scales within 1e-5 relative (the calibration tensors come from two fp32 kernels), predicted alphas
    within 2e-3 max (4 fp16 ulps near 1: an fp32 summation-order difference may move an fp16 rounding or, rarely,
    one INT8 step) and 1e-4 mean; the skip keeps the same layer (conv2) fp16."""
    from matteconv.int8.quantize import auto_skip, calibrate, errors, golden_inputs, predict
    from matteconv.verify.golden import INT8_PREDICTED, load_golden
    from matteconv.verify.int8_stages import int8_stage
    from matteconv.verify.run import verify
    from matteconv.verify.stages import caffe_stage

    onnx_path, golden = tiny
    inputs = golden_inputs(golden)
    rc, ro = calibrate(tiny_caffe, inputs), calibrate(onnx_path, inputs)
    assert rc.framework == "caffe" and [r.op for r in rc.layers] == ["Convolution"] * 3
    assert [r.macs for r in rc.layers] == [r.macs for r in ro.layers]
    for a, b in zip(rc.layers, ro.layers):
        assert a.weight_scales == b.weight_scales and a.act_offset == b.act_offset
        assert a.act_scale == pytest.approx(b.act_scale, rel=1e-5)
    pc, po = predict(tiny_caffe, rc, inputs.xs), predict(onnx_path, ro, inputs.xs)
    assert max(np.abs(a - b).max() for a, b in zip(pc, po)) <= 2e-3
    assert max(np.abs(a - b).mean() for a, b in zip(pc, po)) <= 1e-4
    ec = errors(pc, inputs.goldens)
    assert ec["max_abs"] > errors(predict(tiny_caffe, None, inputs.xs), inputs.goldens)["max_abs"]
    tol = {"max_abs": 0.1, "mean_abs": 0.02}  # as test_auto_skip_meets_a_tolerance_all_int8_misses
    skip = auto_skip(tiny_caffe, rc, inputs, tol)
    assert skip.met and skip.kept_fp16 == ["conv2"] and not (skip.all_int8_error["max_abs"] <= tol["max_abs"])
    # verify --int8 with a Caffe export: the int8-caffe stage, judged at the int8 tolerance
    gset = load_golden(golden)
    rec_path = tiny_caffe.with_suffix(".quant.json")
    rc.save(rec_path)
    parent = caffe_stage(tiny_caffe, gset)
    result = verify(gset, [parent, int8_stage(parent, gset, rec_path)]).results[1]
    assert result.name == "int8-caffe" and result.tolerance == INT8_PREDICTED
    assert result.worst["max_abs"] == pytest.approx(ec["max_abs"], rel=1e-6)
    assert result.status == "failed"  # all INT8 misses 0.1 (0.22 measured)
    # compare --precision int8 on the Caffe export ranks the same layer first as on the ONNX twin
    from matteconv.verify.int8_compare import compare_int8

    rep_c, rep_o = compare_int8(None, tiny_caffe, golden), compare_int8(None, onnx_path, golden)
    assert [r.layer for r in rep_c.rows][0] == "conv2" and [r.layer for r in rep_o.rows][0] == "/conv2/Conv"
    assert rep_c.rows[0].added_max == pytest.approx(rep_o.rows[0].added_max, abs=2e-3)  # as the predictions above


@pytest.mark.slow  # stand-in amct_caffe and atc in child processes plus pycaffe workers: ~10 s
def test_quantize_caffe_runs_standin_amct_caffe_into_om(tiny, tiny_caffe, tmp_path, monkeypatch):
    """`matteconv quantize MODEL.prototxt`: the amct_caffe argv (with --weights), the config's skip, its deploy
    model (Quant/DeQuant around the INT8 layers) handed to `om` with its weights, a build record that says INT8."""
    import json

    from matteconv.int8.amct_config import parse_config

    _, golden = tiny
    out = tmp_path / "q"
    amct, res, argv = quantize_with_standins("amct_caffe", tiny_caffe, golden, out, tmp_path, monkeypatch)
    assert argv[:4] == [str(amct), "calibration", f"--model={tiny_caffe}",
                        f"--weights={tiny_caffe.with_suffix('.caffemodel')}"]
    assert argv[5:] == ["--input_shape=input:1,3,16,16", f"--data_dir={out / 'calibration' / 'input'}",
                        "--data_types=float32", f"--calibration_config={out / 'amct_config.cfg'}", "--batch_num=3"]
    assert list(parse_config((out / "amct_config.cfg").read_text()).skip_layers) == ["conv2"]
    deploy = (out / "tiny_deploy_model.prototxt").read_text()
    assert deploy.count('type: "Quant"') == 2 and deploy.count('type: "DeQuant"') == 2
    build = json.loads((out / "tiny_int8.build.json").read_text())
    assert f"--model={out / 'tiny_deploy_model.prototxt'}" in build["argv"]
    assert f"--weight={out / 'tiny_deploy_model.caffemodel'}" in build["argv"]
    assert build["int8"]["source_model"] == str(tiny_caffe.resolve())
    assert res["trade"]["met"] is True and res["predicted_int8"]["max_abs"] <= 0.1
    assert res["predicted_int8"]["max_abs"] < res["trade"]["all_int8"]["max_abs"]


def test_quantize_bad_input_is_one_line_exit_2_nothing_written(tiny, tmp_path):
    """Missing model, a model that is neither ONNX nor a prototxt, a prototxt without its weights, a missing golden
    folder, a malformed --tolerance: one line naming the file or option, exit 2, no output folder."""
    from typer.testing import CliRunner

    from matteconv.cli import app

    path, golden = tiny
    text = tmp_path / "model.txt"
    text.write_text("not a model")
    lone = tmp_path / "lone.prototxt"
    lone.write_text('name: "x"\n')
    out = tmp_path / "q"
    rows = [
        ([str(tmp_path / "none.onnx"), "--golden", str(golden)], ["none.onnx", "not found"]),
        ([str(text), "--golden", str(golden)], ["model.txt", "ONNX model (.onnx) or a Caffe"]),
        ([str(lone), "--golden", str(golden)], ["lone.prototxt", "weights not found"]),
        ([str(path), "--golden", str(tmp_path / "no_golden")], ["no_golden"]),
        ([str(path), "--golden", str(golden), "--tolerance", "0.1"], ["--tolerance '0.1'", "MAX/MEAN"]),
        ([str(path), "--golden", str(golden), "--tolerance", "a/b"], ["--tolerance 'a/b'"]),
        ([str(path), "--golden", str(golden), "--tolerance", "0/1e-3"], ["must be positive"]),
    ]
    for args, needles in rows:
        r = CliRunner().invoke(app, ["quantize", *args, "-o", str(out)])
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 2 and len(lines) == 1, (args, r.output)
        assert all(n in lines[0] for n in needles), (needles, lines[0])
        assert not out.exists()


def test_errors_carry_the_confident_figures_and_the_tolerance_names_what_is_judged():
    """errors(): worst max / mean over all pixels and over each input's confident pixels (golden alpha < 0.05 or
    > 0.95); within() checks every figure the tolerance names. `quantize --tolerance` takes MAX/MEAN,
    MAX/MEAN/CONFIDENT_MAX/CONFIDENT_MEAN or `golden` (the set's int8 tolerance: golden/real's REAL_INT8)."""
    from conftest import ROOT
    from matteconv.cli.quantize_cmd import parse_tolerance
    from matteconv.int8.quantize import errors, within
    from matteconv.verify.golden_real import REAL_INT8

    gold = np.zeros((4, 4))
    gold[:, 2:] = 1.0
    gold[0, 0] = 0.5  # an unsure pixel: counted in max / mean, not in the confident figures
    pred = gold.copy()
    pred[0, 0] = 0.0  # 0.5 off where unsure
    pred[1, 3] = 0.9  # 0.1 off where confident
    e = errors([pred, gold], [gold, gold])
    assert e["max_abs"] == pytest.approx(0.5) and e["mean_abs"] == pytest.approx(0.6 / 16)
    assert e["confident_max_abs"] == pytest.approx(0.1) and e["confident_mean_abs"] == pytest.approx(0.1 / 15)
    assert within(e, {"max_abs": 0.5, "mean_abs": 0.04})
    assert not within(e, {"max_abs": 0.5, "mean_abs": 0.04, "confident_max_abs": 0.05})
    assert within(e, {"confident_mean_abs": 0.01}) and not within(e, {"max_abs": 0.4})
    assert parse_tolerance("0.5/5e-3/0.25/1e-3") == REAL_INT8
    assert parse_tolerance("golden", ROOT / "golden" / "real" / "320") == REAL_INT8
    for bad in ("0.1", "0.1/2e-3/0.2", "a/b"):
        with pytest.raises(ValueError, match="give MAX/MEAN"):
            parse_tolerance(bad)

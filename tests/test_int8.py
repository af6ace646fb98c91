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

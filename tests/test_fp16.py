"""The fp16 device emulator (matteconv.fp16): known answers per format, the emulators agreeing with each other, and
compare --precision fp16 naming the module where fp16 overflows or underflows."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from matteconv.backends import ort_session
from matteconv.fp16 import DEVICE_MODEL, round16
from matteconv.fp16.onnx_emu import fp16_model
from matteconv.fp16.torch_emu import Fp16TorchBackend
from matteconv.verify.fp16_compare import compare_fp16


def f16(a):
    with np.errstate(over="ignore"):
        return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def test_every_device_rule_cites_a_source_and_its_limits():
    assert len(DEVICE_MODEL) >= 6
    for rule in DEVICE_MODEL:
        assert rule.source.strip() and rule.limits.strip() and rule.emulated.strip(), rule


def test_onnx_emulator_rounds_every_value_where_it_is_made():
    """x * c * k: each product rounded to fp16; 70 * 1000 overflows fp16 (inf) though fp32 gets 70 back.
    Bitwise on purpose: the product of two fp16 values is exact in fp32, so each result is one IEEE rounding to
    fp16, the same on every CPU."""
    x = np.array([[1.0001, 3.14159265, 70.0, 0.1]], np.float32)
    c, k = np.float32(1000.3), np.float32(0.0011)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "c"], ["y"], name="scale_up"),
         helper.make_node("Mul", ["y", "k"], ["z"], name="scale_down")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array(c), "c"), numpy_helper.from_array(np.array(k), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    emulated = fp16_model(model)
    onnx.checker.check_model(emulated)
    assert [o.name for o in emulated.graph.output] == ["z"]
    got = ort_session(emulated.SerializeToString()).run(None, {"x": x})[0]
    want = f16(f16(f16(x) * f16(c)) * f16(k))
    np.testing.assert_array_equal(got, want)
    assert np.isinf(got[0, 2]) and np.isfinite(ort_session(model.SerializeToString()).run(None, {"x": x})[0]).all()


class _Tiny(nn.Module):
    in_channels, split_inputs = 3, False

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.InstanceNorm2d(4)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.norm(self.conv(x)))


def test_torch_emulator_is_fp32_compute_on_fp16_values():
    model = _Tiny().eval()
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32) * 3
    got = Fp16TorchBackend(model).run(x)
    w, b = (torch.from_numpy(f16(p.detach().numpy())) for p in (model.conv.weight, model.conv.bias))
    conv = torch.from_numpy(f16(nn.functional.conv2d(torch.from_numpy(f16(x)), w, b, padding=1).numpy()))
    want = f16(torch.relu(torch.from_numpy(f16(nn.functional.instance_norm(conv).numpy()))).numpy())
    np.testing.assert_array_equal(got, want)
    assert np.abs(got - model(torch.from_numpy(x)).detach().numpy()).max() > 1e-4  # fp16 is visible


def test_caffe_emulator_squares_in_fp16(tmp_path):
    """Power runs in numpy float16 (the only Power kernel on Ascend310): 300^2 overflows to inf, where pycaffe in
    fp32 gives 300 back through the square root; the other values follow fp16 arithmetic step by step."""
    pytest.importorskip("caffe")
    from matteconv.export.caffe.runner import CaffeBackend
    from matteconv.export.caffe.writer import caffe_pb2
    from matteconv.fp16.caffe_emu import Fp16CaffeBackend

    proto = tmp_path / "sq.prototxt"
    proto.write_text('name: "sq"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 '
                     'dim: 1 dim: 4 } } }\nlayer { name: "sq" type: "Power" bottom: "data" top: "sq" power_param { '
                     'power: 2 } }\nlayer { name: "root" type: "Power" bottom: "sq" top: "root" power_param { '
                     'power: 0.5 shift: 0.001 } }\n')
    (tmp_path / "sq.caffemodel").write_bytes(caffe_pb2().NetParameter(name="sq").SerializeToString())
    x = np.array([300.0, 2.0, 0.1, -3.0], np.float32).reshape(1, 1, 1, 4)
    with CaffeBackend(proto) as fp32, Fp16CaffeBackend(proto) as emu:
        plain, got = fp32.run(x), emu.run(x)
    h = x.astype(np.float16)
    with np.errstate(over="ignore"):
        want = ((np.float16(0.001) + h ** np.float16(2)) ** np.float16(0.5)).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert np.isinf(got[0, 0, 0, 0]) and plain[0, 0, 0, 0] == pytest.approx(300.0, rel=1e-5)


def _x(hw=64, seed=0):
    return np.random.default_rng(seed).normal(size=(1, 3, hw, hw)).astype(np.float32)


NORMED = "hr_branch.conv_hr4x.0"  # a Conv2dIBNormRelu: conv, then IBNorm (BatchNorm half + InstanceNorm half)


def _scaled(model, factor):
    m = copy.deepcopy(model)
    conv = m.get_submodule(f"{NORMED}.layers.0")
    with torch.no_grad():
        conv.weight.mul_(factor)
        conv.bias.mul_(factor)
    return m


def test_compare_fp16_names_square_overflow_and_variance_underflow(ref3_model):
    inorm = f"{NORMED}.layers.1.inorm"
    _, issues, _, _ = compare_fp16(ref3_model, _x())
    assert not [i for i in issues if i.module == inorm]
    _, issues, _, _ = compare_fp16(_scaled(ref3_model, 300.0), _x())
    assert any(i.module == inorm and i.kind == "square overflow" and i.value > 65504 for i in issues), issues
    _, issues, _, _ = compare_fp16(_scaled(ref3_model, 1e-4), _x())
    assert any(i.module == inorm and i.kind == "variance underflow" for i in issues), issues


def test_compare_fp16_flags_an_fp16_overflow_by_module_path(ref3_model):
    _, issues, _, _ = compare_fp16(ref3_model, _x())
    assert not [i for i in issues if i.kind == "overflow"]
    _, issues, _, _ = compare_fp16(_scaled(ref3_model, 1e5), _x())
    overflows = [i.module for i in issues if i.kind == "overflow"]
    assert f"{NORMED}.layers.0" in overflows  # the scaled conv itself
    assert not [m for m in overflows if m.startswith(("backbone", "lr_branch"))]  # computed before it: unharmed


def test_torch_and_onnx_emulators_agree_on_the_reference(ref3_model, ref3_onnx):
    """Both predict the same device: far closer to each other than either is to fp32."""
    from matteconv.fp16.onnx_emu import Fp16OnnxBackend
    from matteconv.backends import TorchBackend

    from skimage import data
    from matteconv import preprocess

    x = preprocess.prepare(data.astronaut(), "device", (512, 512)).tensor
    t16 = Fp16TorchBackend(ref3_model).run(x)
    o16 = Fp16OnnxBackend(ref3_onnx).run(x)
    fp32 = TorchBackend(copy.deepcopy(ref3_model)).run(x)
    assert np.array_equal(o16, round16(o16))  # the output is on the fp16 grid
    between, off = np.abs(t16 - o16).mean(), np.abs(t16 - fp32).mean()
    assert off > 1e-3 and between < 0.2 * off, (between, off)

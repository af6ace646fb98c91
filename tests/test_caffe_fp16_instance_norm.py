"""The InstanceNorm lowering under fp16 arithmetic, the way Ascend 310 runs it with atc's default force_fp16:
every layer's output is fp16, Power computes in fp16 (its only Ascend 310 kernel), MVN / Reduction / Pooling /
InnerProduct / Scale / Eltwise compute in fp32 from fp16 inputs (docs/reference/ascend-operator-rules.md).

A small numpy interpreter for exactly the layer types the chain uses (not a general emulator). With activations
of a few hundred, the unscaled chain (MVN -> Power(2) -> Reduction -> Power(-0.5) -> Scale) overflows fp16's
65504 in the square; the lowered chain (pre-scaled by FP16_PRESCALE) stays within fp16 rounding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from matteconv.export.caffe.convert import convert
from matteconv.export.caffe.ir import Layer

F16 = np.float16


def _power(x, p: dict):
    """Caffe Power (shift + scale * x) ^ power, every operation in fp16."""
    x = x.astype(F16)
    y = F16(p.get("shift", 0.0)) + F16(p.get("scale", 1.0)) * x
    power = p.get("power", 1.0)
    return y if power == 1.0 else np.power(y, F16(power))


def _pool(x, p: dict):
    if p.get("global_pooling"):
        return x.mean(axis=(2, 3), keepdims=True)
    kh, kw = p["kernel_h"], p["kernel_w"]
    n, c, h, w = x.shape
    return x.reshape(n, c, h // kh, kh, w // kw, kw).mean(axis=(3, 5))


def _scale(a, b, p: dict):
    assert p == {"axis": 0} and b.ndim == 2  # two bottoms, (1, C) broadcast over H, W
    return a * b[:, :, None, None]


def _eltwise(bottoms, p: dict):
    if p["operation"] == "PROD":  # the square x * x of the InstanceNorm lowering
        return np.prod(bottoms, axis=0)
    assert p["operation"] == "SUM"
    coeff = p.get("coeff", [1.0] * len(bottoms))
    return sum(F16(k).astype(np.float32) * b for k, b in zip(coeff, bottoms))


def run_fp16(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    """Outputs of every layer rounded to fp16; fp32 arithmetic inside all layers but Power."""
    blobs: dict[str, np.ndarray] = {}
    for la in layers:
        b = [blobs[n].astype(np.float32) for n in la.bottoms]
        p = next(iter(la.params.values()), {}) if la.params else {}
        if la.type == "Input":
            y = x
        elif la.type == "Power":
            with np.errstate(over="ignore"):  # fp16 overflow to inf is the point of the test
                y = _power(b[0], p)
        elif la.type == "MVN":
            assert not p["normalize_variance"]
            y = b[0] - b[0].mean(axis=(2, 3), keepdims=True)
        elif la.type == "Reduction":
            assert p == {"operation": "MEAN", "axis": 2}
            y = b[0].reshape(b[0].shape[0], b[0].shape[1], -1).mean(axis=2)
        elif la.type == "Pooling":
            y = _pool(b[0], p)
        elif la.type == "Flatten":
            y = b[0].reshape(b[0].shape[0], -1)
        elif la.type == "InnerProduct":
            w = la.blobs[0].astype(F16).astype(np.float32)
            y = b[0].reshape(b[0].shape[0], -1) @ w.T
        elif la.type == "Scale":
            y = _scale(b[0], b[1], p)
        elif la.type == "Eltwise":
            y = _eltwise(b, p)
        else:
            raise AssertionError(f"no fp16 model for {la.type}")
        with np.errstate(over="ignore"):
            blobs[la.tops[0]] = np.asarray(y).astype(F16)
    return blobs[layers[-1].tops[0]].astype(np.float64)


def unscaled_chain(eps: float) -> list[Layer]:
    """The InstanceNorm lowering before pre-scaling (the one issue 9 names)."""
    return [
        Layer("input", "Input", [], ["input"]),
        Layer("mvn", "MVN", ["input"], ["mvn"], {"mvn_param": {"normalize_variance": False}}),
        Layer("sq", "Power", ["mvn"], ["sq"], {"power_param": {"power": 2.0}}),
        Layer("var", "Reduction", ["sq"], ["var"], {"reduction_param": {"operation": "MEAN", "axis": 2}}),
        Layer("rstd", "Power", ["var"], ["rstd"], {"power_param": {"power": -0.5, "shift": eps}}),
        Layer("out", "Scale", ["mvn", "rstd"], ["out"], {"scale_param": {"axis": 0}}),
    ]


def large_activations() -> torch.Tensor:
    """Four channels: std 0.25 (the smallest InstanceNorm std seen in the reference), 1, 30 and 300 around
    means 0, 5, -50, 100: |x - mean| reaches ~1200, whose square (1.4e6) is far beyond fp16's 65504."""
    gen = torch.Generator().manual_seed(3)
    std = torch.tensor([0.25, 1.0, 30.0, 300.0])[None, :, None, None]
    mean = torch.tensor([0.0, 5.0, -50.0, 100.0])[None, :, None, None]
    return torch.randn(1, 4, 32, 32, generator=gen) * std + mean


@pytest.mark.parametrize("target", ["ascend", "ddk"])
def test_instance_norm_is_fp16_safe_where_the_unscaled_chain_overflows(target):
    m = nn.InstanceNorm2d(4, affine=False).eval()
    x = large_activations()
    assert np.abs(x.numpy()).max() < 65504 / 16  # the input itself is comfortably fp16
    with torch.no_grad():
        ref = m.double()(x.double()).numpy()
    x16 = x.numpy().astype(F16).astype(np.float32)  # the device's input tensor is fp16 too

    old = run_fp16(unscaled_chain(m.eps), x16)
    with np.errstate(invalid="ignore"):
        old_err = np.nan_to_num(np.abs(old - ref), nan=np.inf).max(axis=(0, 2, 3))
    assert old_err[3] > 0.5, old_err  # the std-300 channel: square overflows, variance inf, output collapses

    net = convert(nn.Sequential(m), {"input": tuple(x.shape)}, target)
    new = run_fp16(net.layers, x16)
    err = np.abs(new - ref).max(axis=(0, 2, 3))
    # fp16 keeps 11 significant bits (relative 4.9e-4); outputs reach |4|, through ~6 roundings: 1e-2 is a
    # few fp16 ulps at that magnitude, and 50x below what the overflow costs.
    assert np.isfinite(new).all() and (err < 1e-2).all(), err

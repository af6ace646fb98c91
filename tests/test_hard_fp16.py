"""fp16 on golden/hard (docs/hard-frames.md): the confident-pixel metric, `--keep-fp32` in the torch prediction,
and `compare --precision fp16` on the hard stills."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from matteconv.fp16.device import round16
from matteconv.fp16.torch_emu import device_form, emulate_fp16
from matteconv.verify import metrics


def test_confident_errors_judge_only_where_the_reference_is_sure():
    gt = np.array([[0.0, 0.5], [1.0, 0.04]])
    pred = gt + np.array([[0.01, 0.3], [-0.02, 0.0]])
    got = metrics.confident_errors(pred, gt)
    # 0.5 is unsure (left out); 0.0, 1.0 and 0.04 are judged: max 0.02, mean (0.01 + 0.02 + 0) / 3
    assert got == pytest.approx({"confident_max_abs": 0.02, "confident_mean_abs": 0.01, "confident_share": 0.75})
    assert metrics.all_metrics(pred, gt)["max_abs"] == pytest.approx(0.3)  # the plain metric still sees it
    none = metrics.confident_errors(pred, np.full((2, 2), 0.5))
    assert none == {"confident_max_abs": 0.0, "confident_mean_abs": 0.0, "confident_share": 0.0}


class _Tiny(nn.Module):
    """conv -> InstanceNorm (affine) -> conv: the shape of an IBNorm block, small enough for a fast test."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.norm = nn.InstanceNorm2d(4, affine=True)
        self.out = nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.3, 0.3)

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.conv(x))))


def _predict(keep=()):
    m = device_form(_Tiny(), keep)
    emulate_fp16(m, keep)
    x = torch.from_numpy(round16(np.random.default_rng(1).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)))
    with torch.no_grad():
        return m, m(x).numpy()


def test_keep_fp32_leaves_convolutions_in_fp16_and_keeps_the_rest():
    base, before = _predict()
    # a convolution cannot leave fp16 on Ascend310 (fp16-only kernel): the same weights, hooks and input as
    # without keep, so the same function on the same input: bitwise equal
    conv_kept, conv = _predict(("conv",))
    assert np.array_equal(conv, before)
    assert torch.equal(conv_kept.conv.weight, base.conv.weight)
    # an InstanceNorm can: its affine parameters stay fp32 (off the fp16 grid) and its output is not rounded
    norm_kept, norm = _predict(("norm",))
    w = norm_kept.norm.weight.detach().numpy()
    assert not np.array_equal(w, round16(w)) and np.array_equal(base.norm.weight.detach().numpy(),
                                                               round16(base.norm.weight.detach().numpy()))
    assert not np.array_equal(norm, before)
    # fp16 rounding of the norm's parameters and output is a few fp16 ulps of its values (<= 4.9e-4 relative)
    assert np.max(np.abs(norm - before)) < 1e-2 * np.max(np.abs(before))


@pytest.mark.slow
def test_compare_fp16_names_a_conv_on_dark_room_that_keep_fp32_cannot_move():
    """golden/hard/stills at 288x512 (docs/hard-frames.md, fp16 table): the predicted .om is worst on dark_room;
    compare names the first module fp16 hurts, a convolution; `--keep-fp32 auto` lists it, but Ascend310
    computes convolutions in fp16 whatever is asked, so the prediction is unchanged (bitwise: same function, same
    input). The plain error stays far over the fp16 goal; on the pixels where the reference is confident it is
    within the set's confident tolerance."""
    from conftest import ROOT

    from matteconv.fp16.torch_emu import Fp16TorchBackend
    from matteconv.reference import reference_model
    from matteconv.verify.compare import worst_input
    from matteconv.verify.fp16_compare import compare_fp16
    from matteconv.verify.golden import FP16_PREDICTED, load_golden, model_input

    gset = load_golden(ROOT / "golden" / "hard" / "stills")
    model = reference_model(3)
    before = Fp16TorchBackend(model)
    idx, errors = worst_input(gset, before)
    assert gset.items[idx].name == "dark_room" and errors["dark_room"] > 0.3, errors
    x = model_input(gset.frames()[idx], None)
    rows, issues, _, _ = compare_fp16(model, x)
    first = next(r for r in rows if r.rel > 1e-2)
    assert first.op == "Conv2d" and not issues, (first, issues)
    gold = gset.items[idx].golden_alpha().astype(np.float64)
    a0 = before.run(x)
    a1 = Fp16TorchBackend(model, (first.module,)).run(x)
    assert np.array_equal(a0, a1)
    a0 = a0.astype(np.float64).reshape(gold.shape)
    assert np.abs(a0 - gold).max() > 5 * FP16_PREDICTED["max_abs"]
    conf = metrics.confident_errors(a0, gold)
    tol = gset.tolerance("fp16")
    assert conf["confident_max_abs"] <= tol["confident_max_abs"], conf
    assert conf["confident_mean_abs"] <= tol["confident_mean_abs"], conf


def test_aipp_floor_against_opencv_round_bounds_the_input_mean_on_hard_frames(tmp_path):
    """The aipp stage's model input on golden/hard (verify/golden.py HARD_AIPP): AIPP floors (`>> 8`) where
    OpenCV's NV21 decoder rounds, so a right config is 0 or 1 LSB from OpenCV on every pixel, on the whole-LSB
    grid; clipped white reaches 1 on every pixel (298 * 219 / 256 = 254.93 -> 254, OpenCV 255), which is why
    backlit and overexposed frames are over the photos' 0.5 mean."""
    from matteconv.aipp import AippSpec, load_config, render_config
    from matteconv.verify.ascend_stages import aipp_input_lsb
    from matteconv.verify.golden import HARD_AIPP

    path = tmp_path / "nv21_32x64.cfg"
    path.write_text(render_config(AippSpec("nv21", (32, 64))))
    cfg = load_config(path)
    white = aipp_input_lsb(cfg, np.full((32, 64, 3), 255, np.uint8))
    # float32 model inputs differ from the float64 reference by < 1e-5 LSB
    assert white["input_max_lsb"] == pytest.approx(1.0, abs=1e-4)
    assert white["input_mean_lsb"] == pytest.approx(1.0, abs=1e-4) and white["input_fraction_lsb"] < 1e-4
    assert white["input_mean_lsb"] <= HARD_AIPP["input_mean_lsb"]
    grey = aipp_input_lsb(cfg, np.full((32, 64, 3), 128, np.uint8))  # both decoders land on the same value
    assert grey["input_max_lsb"] == pytest.approx(0.0, abs=1e-4)


@pytest.mark.slow
def test_aipp_input_on_every_hard_still_is_within_the_rounding_bound():
    from conftest import ROOT

    from matteconv.aipp import load_config
    from matteconv.verify.ascend_stages import aipp_input_lsb
    from matteconv.verify.golden import AIPP, HARD_AIPP, load_golden

    cfg = load_config(ROOT / "aipp" / "nv21_288x512.cfg")
    gset = load_golden(ROOT / "golden" / "hard" / "stills")
    assert gset.tolerance("aipp") == HARD_AIPP == load_golden(ROOT / "golden" / "hard" / "clip").tolerance("aipp")
    got = {it.name: aipp_input_lsb(cfg, f) for it, f in zip(gset.items, gset.frames())}
    for name, r in got.items():
        assert r["input_max_lsb"] <= 1.0 + 1e-4 and r["input_fraction_lsb"] < 1e-4, (name, r)
        assert r["input_mean_lsb"] <= HARD_AIPP["input_mean_lsb"], (name, r)
    # measured 2026-11-30: backlit 0.743, overexposed 0.637 (clipped white); flat grey frames decode identically
    assert got["backlit"]["input_mean_lsb"] == pytest.approx(0.743, abs=2e-3)
    assert got["overexposed"]["input_mean_lsb"] > AIPP["input_mean_lsb"]
    assert got["grey128"]["input_max_lsb"] == pytest.approx(0.0, abs=1e-4)

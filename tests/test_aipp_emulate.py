"""The AIPP emulator against OpenCV and matteconv.preprocess, with real error numbers (1 LSB = 1/127.5)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from matteconv.aipp import AippSpec, aipp_model_input, emulate, parse_config, render_config, rgb_to_nv12, rgb_to_nv21
from matteconv.errors import MatteconvError
from matteconv.preprocess import normalize

LSB = 127.5
NV21 = render_config(AippSpec("nv21", (384, 384)))
RGB888 = render_config(AippSpec("rgb888", (384, 384)))


def frames(h=384, w=384):
    """Three deterministic photo-like frames: smooth colour fields, edges and sensor noise."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for k in range(3):
        base = np.stack([np.sin((5 + k) * xx + k) * 0.5 + 0.5, np.cos((4 + k) * yy * xx + 2) * 0.5 + 0.5,
                         (xx + yy * (k + 1)) / (k + 2)], -1) * 255
        base[h // 3: h // 2, w // 4: w // 2] = rng.integers(0, 256, 3)  # a flat block with hard edges
        img = cv2.GaussianBlur(base, (0, 0), 2 + k) + rng.normal(0, 6 + 4 * k, base.shape)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def nv21_vs_opencv(cfg_text):
    """Emulated AIPP vs cv2 NV21 decode + normalize(), over the test frames: (max, mean |d|, max off-grid) in LSB."""
    cfg = parse_config(cfg_text)
    diffs = []
    for rgb in frames():
        raw = rgb_to_nv21(rgb)
        ref = normalize(cv2.cvtColor(raw.reshape(576, 384), cv2.COLOR_YUV2RGB_NV21))
        diffs.append((emulate(cfg, raw) - ref).astype(np.float64) * LSB)
    d = np.concatenate([x.ravel() for x in diffs])
    return np.abs(d).max(), np.abs(d).mean(), np.abs(d - np.rint(d)).max(), d.mean()


def test_nv21_preset_matches_opencv():
    mx, mean, offgrid, bias = nv21_vs_opencv(NV21)
    # measured: max 1.0, mean 0.45, signed bias -0.45 (the documented >> 8 floors; OpenCV rounds)
    assert mx <= 2.0 + 1e-4
    assert mean < 0.5
    assert -0.5 < bias < 0.0
    assert offgrid < 1e-3  # normalisation exact: only the integer CSC rounding differs, by whole LSBs


def test_wrong_row_order_fails():
    bgr_rows = NV21.replace("matrix_r0c2 : 409", "matrix_r0c2 : 0").replace("matrix_r0c1 : 0", "matrix_r0c1 : 516") \
                   .replace("matrix_r2c1 : 516", "matrix_r2c1 : 0").replace("matrix_r2c2 : 0", "matrix_r2c2 : 409")
    mx, mean, _, _ = nv21_vs_opencv(bgr_rows)  # GraphEngine's default B,G,R order
    assert mx > 50 and mean > 5


def test_mean_127_fails():
    mean127 = NV21
    for i in range(3):
        mean127 = mean127.replace(f"min_chn_{i} : 0.5", f"min_chn_{i} : 0.0")
    mx, mean, offgrid, _ = nv21_vs_opencv(mean127)
    assert offgrid > 0.49  # every value sits half an LSB off
    assert not (mean < 0.5 and offgrid < 1e-3)


def test_unswapped_nv21_fails():
    mx, mean, _, _ = nv21_vs_opencv(NV21.replace("rbuv_swap_switch : true", "rbuv_swap_switch : false"))
    assert mx > 20 and mean > 2


def test_rgb888_preset_equals_normalize_exactly():
    """Bitwise on purpose: both sides are float64 subtract / multiply / divide per element, then one cast to
    float32. IEEE-754 rounds each basic operation correctly on every CPU (numpy ufuncs do not fuse them), and there
    is no BLAS or reduction here, so equality is a property of the numbers, not of the processor."""
    cfg = parse_config(RGB888)
    for rgb in frames():
        assert np.array_equal(emulate(cfg, rgb), normalize(rgb))
        assert np.array_equal(aipp_model_input(rgb, cfg), normalize(rgb))
    bad = parse_config(RGB888.replace("min_chn_0 : 0.5", "min_chn_0 : 0.0"))
    d = (emulate(bad, frames()[0]) - normalize(frames()[0])) * LSB
    assert np.allclose(d[0, 0], 0.5, atol=1e-4) and np.array_equal(d[0, 1:], np.zeros_like(d[0, 1:]))


def test_bgr888_swaps_to_rgb():
    cfg = parse_config(render_config(AippSpec("bgr888", (384, 384))))
    rgb = frames()[1]
    assert np.array_equal(emulate(cfg, np.ascontiguousarray(rgb[..., ::-1])), normalize(rgb))


def test_fp16_output_is_within_fp16_rounding():
    cfg = parse_config(RGB888)
    rgb = frames()[0]
    a, b = emulate(cfg, rgb, fp16=True), normalize(rgb)
    err = np.abs(a - b).max()
    assert 0 < err < 1e-3  # fp16 registers and output: ~5e-4 at |x| ~ 1, far below 1 LSB (7.8e-3)
    assert np.array_equal(a, a.astype(np.float16).astype(np.float32))


def test_crop_window():
    spec = AippSpec("nv21", (128, 128), src_size=(192, 256), crop=(64, 32, 128, 128))
    cfg = parse_config(render_config(spec))
    rgb = frames(192, 256)[2]
    whole = parse_config(render_config(AippSpec("nv21", (192, 256))))
    full = emulate(whole, rgb_to_nv21(rgb))
    assert np.array_equal(emulate(cfg, rgb_to_nv21(rgb)), full[:, :, 32:160, 64:192])
    assert aipp_model_input(rgb, cfg).shape == (1, 3, 128, 128)
    with pytest.raises(MatteconvError, match="frame is 128x128 but the AIPP source is 256x192"):
        aipp_model_input(rgb[:128, :128], cfg)


def test_encoders():
    rgb = frames()[0]
    nv21, nv12 = rgb_to_nv21(rgb), rgb_to_nv12(rgb)
    n = 384 * 384
    assert nv21.shape == (n * 3 // 2,) and nv21.dtype == np.uint8
    assert np.array_equal(nv21[:n], nv12[:n])
    assert np.array_equal(nv21[n:].reshape(-1, 2), nv12[n:].reshape(-1, 2)[:, ::-1])
    # round trip through OpenCV's decoder on a frame with constant 2x2 blocks (no chroma subsampling loss)
    blocky = frames(192, 192)[0].repeat(2, axis=0).repeat(2, axis=1)
    back = cv2.cvtColor(rgb_to_nv21(blocky).reshape(576, 384), cv2.COLOR_YUV2RGB_NV21).astype(int)
    d = np.abs(back - blocky.astype(int))
    assert d.max() <= 3 and d.mean() < 1.0
    # Y agrees with OpenCV's BT.601 video-range luma to the level
    y_cv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)[:384]
    assert np.abs(y_cv.astype(int) - nv21[:n].reshape(384, 384)).max() <= 1
    # full range through the full-range config reproduces normalize() closely
    full = parse_config(render_config(AippSpec("nv12", (384, 384), color_range="full")))
    diff = (aipp_model_input(blocky, full) - normalize(blocky)) * LSB
    video = (aipp_model_input(blocky, parse_config(NV21)) - normalize(blocky)) * LSB
    assert np.abs(diff).max() <= 4 and np.abs(diff).mean() < 1.0
    assert np.abs(video).max() <= 4 and np.abs(video).mean() < 1.0
    with pytest.raises(MatteconvError, match="even width and height"):
        rgb_to_nv21(rgb[:383])


def test_yuv400_emulates_one_channel():
    # bitwise: elementwise IEEE float64 arithmetic and one cast on both sides (see the RGB888 test)
    cfg = parse_config("aipp_op { aipp_mode: static input_format: YUV400_U8 src_image_size_w: 64 "
                       "src_image_size_h: 32 mean_chn_0: 127 min_chn_0: 0.5 var_reci_chn_0: 0.00784313725490196 }")
    y = np.arange(64 * 32, dtype=np.uint8).reshape(32, 64)
    out = emulate(cfg, y)
    assert out.shape == (1, 1, 32, 64)
    assert np.array_equal(out[0, 0], ((y.astype(np.float64) - 127.5) / 127.5).astype(np.float32))


def test_emulator_rejects_bad_buffers():
    cfg = parse_config(NV21)
    with pytest.raises(MatteconvError, match="needs 221184 bytes, got 100"):
        emulate(cfg, np.zeros(100, np.uint8))
    with pytest.raises(MatteconvError, match="must be uint8"):
        emulate(cfg, np.zeros(221184, np.float32))


@pytest.mark.parametrize("color_range", ["video", "full"])
def test_yuv420sp_bytes_are_the_exactly_rounded_bt601_values(color_range):
    """The encoder works in exact integers (BT.601 rows times their denominator): every byte is the float64
    formula's rint except at exact .5 ties, where float64's own rounding of the row constants decides and the
    integer form rounds half to even. So: equal off ties, within 1 LSB on them, and ties are rare."""
    from matteconv.aipp.emulate import _RGB2YUV, _RGB2YUV_INT

    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    got = rgb_to_nv12(rgb, color_range)
    m, off = _RGB2YUV[color_range]
    mi, den, offi = _RGB2YUV_INT[color_range]
    assert np.allclose(np.array(mi) / den, m, rtol=0, atol=1e-12)  # the integer rows are the float rows
    yuv = rgb.astype(np.float64) @ m.T + off
    y_num = rgb.astype(np.int64) @ np.array(mi[0]).T  # exact numerator of Y - offset
    y_tie = (2 * y_num) % (2 * den) == den
    y = got[:96 * 128].reshape(96, 128)
    np.testing.assert_array_equal(y[~y_tie], np.rint(yuv[..., 0])[~y_tie])
    assert np.abs(y.astype(int) - np.rint(yuv[..., 0])).max() <= 1 and y_tie.mean() < 0.01
    s = rgb.astype(np.int64).reshape(48, 2, 64, 2, 3).sum(axis=(1, 3))
    uv = got[96 * 128:].reshape(48, 64, 2)
    c = yuv[..., 1:].reshape(48, 2, 64, 2, 2).mean(axis=(1, 3))
    for k in (0, 1):  # NV12: U then V
        tie = (2 * (s @ np.array(mi[k + 1]))) % (8 * den) == 4 * den
        np.testing.assert_array_equal(uv[..., k][~tie], np.rint(c[..., k])[~tie])
        assert np.abs(uv[..., k].astype(int) - np.rint(c[..., k])).max() <= 1

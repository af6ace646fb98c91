"""Alpha-matting metrics on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from matteconv.verify.metrics import (
    all_metrics,
    connectivity_error,
    gauss_gradient_kernels,
    gradient_error,
    max_abs,
    mean_abs,
    mse,
    sad,
)

SIGMA = 1.4


def _one_pixel_case() -> tuple[np.ndarray, np.ndarray]:
    """4x4 zeros vs the same with pixel (1, 2) set to 0.5."""
    gt = np.zeros((4, 4))
    pred = gt.copy()
    pred[1, 2] = 0.5
    return pred, gt


# --- identical inputs -------------------------------------------------------------


def test_identical_alphas_give_zero_everywhere():
    rng = np.random.default_rng(0)
    gt = rng.random((12, 10))
    assert all_metrics(gt, gt.copy()) == {
        "max_abs": 0.0,
        "mean_abs": 0.0,
        "sad": 0.0,
        "mse": 0.0,
        "grad": 0.0,
        "conn": 0.0,
    }


def test_all_metrics_key_order():
    pred, gt = _one_pixel_case()
    assert list(all_metrics(pred, gt)) == ["max_abs", "mean_abs", "sad", "mse", "grad", "conn"]


# --- SAD / MSE / max / mean ----------------------------------------------------------


def test_one_pixel_off_by_half():
    pred, gt = _one_pixel_case()
    # 0.5 / 1000; 0.5^2 over 16 pixels; 0.5 over 16 pixels.
    assert sad(pred, gt) == pytest.approx(0.0005, abs=1e-15)
    assert mse(pred, gt) == pytest.approx(0.25 / 16, abs=1e-15)
    assert max_abs(pred, gt) == 0.5
    assert mean_abs(pred, gt) == pytest.approx(0.5 / 16, abs=1e-15)


def test_metrics_are_symmetric():
    pred, gt = _one_pixel_case()
    assert all_metrics(pred, gt) == pytest.approx(all_metrics(gt, pred))


def test_region_excluding_the_pixel_gives_zero():
    pred, gt = _one_pixel_case()
    region = np.ones((4, 4), dtype=bool)
    region[1, 2] = False
    assert sad(pred, gt, region) == 0.0
    assert mse(pred, gt, region) == 0.0
    assert max_abs(pred, gt, region) == 0.0
    assert mean_abs(pred, gt, region) == 0.0


def test_region_restricts_sums_and_means():
    pred, gt = _one_pixel_case()
    region = np.zeros((4, 4), dtype=bool)
    region[1, :] = True  # the row with the bad pixel: 4 pixels
    assert sad(pred, gt, region) == pytest.approx(0.0005, abs=1e-15)  # sum unchanged
    assert mse(pred, gt, region) == pytest.approx(0.25 / 4, abs=1e-15)  # mean over 4
    assert mean_abs(pred, gt, region) == pytest.approx(0.5 / 4, abs=1e-15)
    assert max_abs(pred, gt, region) == 0.5


def test_empty_region_rejected_for_means():
    pred, gt = _one_pixel_case()
    empty = np.zeros((4, 4), dtype=bool)
    assert sad(pred, gt, empty) == 0.0  # a sum over nothing is fine
    with pytest.raises(ValueError, match="empty"):
        mse(pred, gt, empty)
    with pytest.raises(ValueError, match="empty"):
        max_abs(pred, gt, empty)


# --- input validation --------------------------------------------------------------


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape mismatch"):
        sad(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="shape mismatch"):
        all_metrics(np.zeros((4, 4)), np.zeros((5, 4)))


def test_region_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape mismatch"):
        mse(np.zeros((4, 4)), np.zeros((4, 4)), np.ones((3, 4), dtype=bool))


def test_non_2d_and_non_float_and_non_bool_region_rejected():
    with pytest.raises(ValueError, match="2-D"):
        sad(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)))
    with pytest.raises(TypeError, match="float"):
        sad(np.zeros((4, 4), dtype=np.uint8), np.zeros((4, 4)))
    trimap = np.full((4, 4), 128, dtype=np.uint8)
    with pytest.raises(TypeError, match="boolean"):
        sad(np.zeros((4, 4)), np.zeros((4, 4)), trimap)


def test_float32_is_computed_in_float64():
    rng = np.random.default_rng(1)
    gt32 = rng.random((16, 16), dtype=np.float32)
    pred32 = np.clip(gt32 + rng.normal(0, 0.05, (16, 16)).astype(np.float32), 0, 1)
    region = rng.random((16, 16)) > 0.3
    # The same values in either dtype: bit-identical results.
    assert all_metrics(pred32, gt32, region) == all_metrics(
        pred32.astype(np.float64), gt32.astype(np.float64), region
    )


def test_float32_vs_float64_agree_closely():
    rng = np.random.default_rng(2)
    gt = rng.random((16, 16))
    pred = np.clip(gt + rng.normal(0, 0.05, (16, 16)), 0, 1)
    m64 = all_metrics(pred, gt)
    m32 = all_metrics(pred.astype(np.float32), gt.astype(np.float32))
    for key in ("max_abs", "mean_abs", "sad", "mse", "grad"):
        assert m32[key] == pytest.approx(m64[key], rel=1e-5, abs=1e-9), key
    # Conn is piecewise (thresholds), so float32 rounding may move a pixel across one;
    # random values essentially never sit within 1e-7 of k/10.
    assert m32["conn"] == pytest.approx(m64["conn"], rel=1e-5, abs=1e-9)


# --- gradient -----------------------------------------------------------------------


def _matlab_hx(sigma: float) -> np.ndarray:
    """MATLAB gaussgradient's hx, built with its literal double loop (independent code)."""
    eps = 1e-2
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * eps)))
    size = 2 * half + 1

    def gauss(x):
        return math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))

    def dgauss(x):
        return -x * gauss(x) / sigma**2

    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            hx[i, j] = gauss(i - half) * dgauss(j - half)
    return hx / math.sqrt(float(np.sum(np.abs(hx) * np.abs(hx))))


def _conv2_replicate(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Plain-loop imfilter(img, kernel, 'replicate', 'conv')."""
    h = kernel.shape[0] // 2
    padded = np.pad(img, h, mode="edge")
    out = np.zeros_like(img)
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            acc = 0.0
            for i in range(-h, h + 1):
                for j in range(-h, h + 1):
                    acc += kernel[i + h, j + h] * padded[y + h - i, x + h - j]
            out[y, x] = acc
    return out


def _reference_gradient_error(pred, gt, sigma=SIGMA, region=None):
    hx = _matlab_hx(sigma)
    hy = hx.T

    def amp(im):
        return np.sqrt(_conv2_replicate(im, hx) ** 2 + _conv2_replicate(im, hy) ** 2)

    err = (amp(pred) - amp(gt)) ** 2
    if region is not None:
        err = err * region
    return err.sum() / 1000


def test_kernel_size_for_sigma_1_4():
    # halfsize = ceil(1.4 * sqrt(-2 ln(sqrt(2 pi) * 1.4 * 0.01))) = ceil(3.62...) = 4
    smooth, deriv = gauss_gradient_kernels(SIGMA)
    assert smooth.shape == deriv.shape == (9,)
    # The separable factors rebuild MATLAB's 2-D kernel exactly.
    np.testing.assert_allclose(np.outer(smooth, deriv), _matlab_hx(SIGMA), rtol=0, atol=1e-15)


def test_gradient_matches_explicit_convolution():
    rng = np.random.default_rng(3)
    gt = rng.random((7, 11))  # non-square, to catch an x/y mix-up
    pred = np.clip(gt + rng.normal(0, 0.2, gt.shape), 0, 1)
    region = rng.random(gt.shape) > 0.5
    assert gradient_error(pred, gt) == pytest.approx(
        _reference_gradient_error(pred, gt), rel=1e-12
    )
    assert gradient_error(pred, gt, region) == pytest.approx(
        _reference_gradient_error(pred, gt, region=region), rel=1e-12
    )


def test_gradient_of_small_image_uses_replicated_borders():
    # 3x3 is smaller than the 9x9 kernel: everything comes from replicated borders.
    pred = np.array([[0.0, 0.25, 0.5], [0.0, 0.5, 1.0], [0.25, 0.5, 0.75]])
    gt = np.zeros((3, 3))
    assert gradient_error(pred, gt) == pytest.approx(
        _reference_gradient_error(pred, gt), rel=1e-12
    )


def test_constant_offset_has_no_gradient_error():
    rng = np.random.default_rng(4)
    gt = rng.random((20, 20)) * 0.8
    pred = gt + 0.2  # the derivative kernel sums to 0, so a constant offset vanishes
    interior = np.zeros(gt.shape, dtype=bool)
    interior[4:-4, 4:-4] = True
    assert gradient_error(pred, gt, interior) == pytest.approx(0.0, abs=1e-20)
    assert gradient_error(pred, gt) == pytest.approx(0.0, abs=1e-20)  # replicate keeps it
    assert sad(pred, gt) == pytest.approx(400 * 0.2 / 1000)  # while SAD sees it


def test_gradient_of_ramp_in_interior_matches_closed_form():
    # gt(y, x) = s * x. Away from the borders, convolution with hx gives
    # Gx = -s * sum_u u * d(u) * sum_v g(v), Gy = 0 (sum of d is 0), with g, d the
    # L2-normalised Gaussian and derivative samples, d(u) = -u g(u)/sigma^2. So
    # |grad| = s * sum(u^2 G(u)) / sigma^2 / ||D|| * sum(G) / ||G||, unnormalised G, D.
    s = 0.02
    gt = np.tile(np.arange(20) * s, (20, 1))
    pred = np.zeros_like(gt)
    u = np.arange(-4, 5, dtype=float)
    g = np.exp(-(u**2) / (2 * SIGMA**2))  # the constant factor cancels
    d = -u * g / SIGMA**2
    amp = s * np.sum(u**2 * g) / SIGMA**2 / np.linalg.norm(d) * np.sum(g) / np.linalg.norm(g)
    interior = np.zeros(gt.shape, dtype=bool)
    interior[4:-4, 4:-4] = True  # 12 x 12 pixels whose 9x9 window avoids the border
    assert gradient_error(pred, gt, interior) == pytest.approx(144 * amp**2 / 1000, rel=1e-12)


def test_gradient_region_away_from_change_is_zero():
    pred = np.zeros((20, 20))
    gt = np.zeros((20, 20))
    pred[2, 2] = 1.0
    far = np.zeros((20, 20), dtype=bool)
    far[10:, 10:] = True  # more than the kernel half-size (4) from (2, 2)
    assert gradient_error(pred, gt, far) == 0.0
    assert gradient_error(pred, gt) > 0.0


# --- connectivity -------------------------------------------------------------------
# phi = 1 - d * (d >= 0.15), d = alpha - l, l = last threshold before the pixel left
# the largest 4-connected component of (pred >= t) & (gt >= t), or 1 if it never left.


def test_connectivity_everything_missing():
    # pred all 0, gt all 1: the intersection is empty from t = 0.1, so l = 0 everywhere;
    # phi_pred = 1, phi_gt = 1 - 1 = 0; 4 pixels -> 4 / 1000.
    assert connectivity_error(np.zeros((2, 2)), np.ones((2, 2))) == pytest.approx(0.004)


def test_connectivity_single_blob():
    # gt [1 1 1 1 1], pred [1 1 1 1 .75]: for t <= 0.7 all five pixels form one blob;
    # at t = 0.8 pixel 4 drops out, so l = 0.7 there (1 elsewhere, where d = 0).
    # pixel 4: d_pred = 0.05 < 0.15 -> phi 1; d_gt = 0.3 -> phi 0.7; error 0.3 / 1000.
    gt = np.ones((1, 5))
    pred = gt.copy()
    pred[0, 4] = 0.75
    assert connectivity_error(pred, gt) == pytest.approx(0.0003, abs=1e-15)


def test_connectivity_two_blobs_only_largest_counts():
    # gt [1 1 1 0 1], pred [1 1 1 0 .75]: the lone pixel 4 is never in the largest
    # component (size 3 vs 1), so l = 0 there from t = 0.1 on.
    # pixel 4: phi_pred = 1 - 0.75 = 0.25, phi_gt = 1 - 1 = 0; pixel 3: d = 0 for both.
    gt = np.array([[1.0, 1.0, 1.0, 0.0, 1.0]])
    pred = gt.copy()
    pred[0, 4] = 0.75
    assert connectivity_error(pred, gt) == pytest.approx(0.00025, abs=1e-15)
    # Restricting the region to the big blob hides the island entirely.
    region = np.array([[True, True, True, True, False]])
    assert connectivity_error(pred, gt, region) == 0.0


def test_connectivity_is_four_connected():
    # (1, 2) touches (0, 1) only diagonally: with 4-connectivity it is an island (l = 0,
    # error 0.25 as above); 8-connectivity would have given the single-blob 0.3.
    gt = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    pred = gt.copy()
    pred[1, 2] = 0.75
    assert connectivity_error(pred, gt) == pytest.approx(0.00025, abs=1e-15)


def test_connectivity_tie_picks_matlab_component():
    # Two single-pixel blobs, (0, 1) and (1, 0). MATLAB numbers components column-major,
    # so max() picks (1, 0): then (0, 1) has l = 0, error 0.25 (as an island).
    # Row-major numbering would pick (0, 1): l = 0.7 there -> 0.3, and (1, 0) gets
    # l = 0 with phi 0 for both -> total 0.3. Only the MATLAB order gives 0.00025.
    gt = np.array([[0.0, 1.0], [1.0, 0.0]])
    pred = np.array([[0.0, 0.75], [1.0, 0.0]])
    assert connectivity_error(pred, gt) == pytest.approx(0.00025, abs=1e-15)


def test_connectivity_small_differences_below_theta_are_free():
    # One blob, pred 0.95 where gt is 1: the pixel leaves at t = 1.0, so l = 0.9;
    # d_pred = 0.05 and d_gt = 0.1 are both < 0.15: phi = 1 for both, no error,
    # although SAD sees 0.05. (Values exactly on a threshold are avoided: MATLAB
    # compares single-precision alphas there, so ties are not portable.)
    gt = np.ones((3, 3))
    pred = gt.copy()
    pred[1, 1] = 0.95
    assert connectivity_error(pred, gt) == 0.0
    assert sad(pred, gt) == pytest.approx(0.00005)

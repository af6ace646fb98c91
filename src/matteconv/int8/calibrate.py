"""Post-training calibration as AMCT documents it: IFMR for activations (per tensor, with or without offset) and
ARQ for weights (symmetric; per output channel, or one scale for fully connected layers).

IFMR ([IFMR] in rules.py): clip_max_init is the max_percentile point of the ascending activations, clip_min_init
the min_percentile point of the descending ones; both are scaled by one factor from search_range_start to
search_range_end in search_step steps, and the factor whose quantize-dequantize error (sum of squares) is least
wins. The range always contains 0 (0 must be exact: it is the padding value). Without offset the range is
symmetric, +-max(|clip_min|, |clip_max|). Defaults are AMCT's (FMRQuantize): max_percentile 0.999999,
min_percentile 0.999999, search range [0.7, 1.3], step 0.01, asymmetric (activation_offset true).
Assumption, stated: one factor for both ends (the docs do not say whether the two ends are searched jointly).
Cost: the percentiles are exact over every calibration value; the error search runs on a fixed, evenly strided
subsample of at most SEARCH_SAMPLES values per layer (the ends are kept exactly), so calibration of the golden
clip takes seconds.

ARQ ([ARQ]): scale_w = max|w| / 127 over each output channel (channel_wise), or over the whole tensor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .rules import INT8_MAX, INT8_MIN, WEIGHT_MAX

SEARCH_SAMPLES = 1 << 16


@dataclass(frozen=True)
class IfmrConfig:
    """AMCT FMRQuantize fields and defaults ([CFG], [IFMR])."""

    max_percentile: float = 0.999999
    min_percentile: float = 0.999999
    search_range_start: float = 0.7
    search_range_end: float = 1.3
    search_step: float = 0.01
    with_offset: bool = True  # AMCTConfig.activation_offset

    def factors(self) -> np.ndarray:
        n = int(round((self.search_range_end - self.search_range_start) / self.search_step)) + 1
        return self.search_range_start + self.search_step * np.arange(n)


def act_params(clip_min: float, clip_max: float, with_offset: bool) -> tuple[float, int]:
    """(scale_d, offset) for a clipping range that contains 0. Symmetric: scale = max(|min|, |max|) / 127,
    offset 0. Asymmetric: scale = (max - min) / 255, offset = -128 - round(min / scale) (so min maps to -128)."""
    clip_min, clip_max = min(clip_min, 0.0), max(clip_max, 0.0)
    if not with_offset:
        scale = max(-clip_min, clip_max) / INT8_MAX
        return (scale if scale > 0 else 1.0), 0
    scale = (clip_max - clip_min) / (INT8_MAX - INT8_MIN)
    if scale <= 0:
        return 1.0, 0
    offset = int(INT8_MIN - np.rint(clip_min / scale))
    return float(scale), int(np.clip(offset, INT8_MIN, INT8_MAX))


def fake_quant(x: np.ndarray, scale: float, offset: int) -> np.ndarray:
    """Quantize-dequantize per [QUANT]: clip(round_half_even(x / scale) + offset, -128, 127), back to float."""
    q = np.clip(np.rint(x / scale) + offset, INT8_MIN, INT8_MAX)
    return (q - offset) * scale


def _extreme(flat: np.ndarray, k: int, sample: np.ndarray, largest: bool) -> np.ndarray:
    """The k largest (or smallest) values of `flat`, exactly. `sample` (a subset of flat) gives a threshold that
    more than k values of flat pass, so only those few are partitioned, not the whole tensor."""
    s = np.sort(sample)
    margin = min(s.size - 1, 4 * k + 8)
    if largest:
        sel = flat[flat >= s[s.size - 1 - margin]]
        return np.partition(sel, sel.size - k)[sel.size - k:]
    sel = flat[flat <= s[margin]]
    return np.partition(sel, k - 1)[:k]


class ActivationObserver:
    """Accumulates one layer's input over the calibration batches: the exact tails (for the percentiles) and a
    strided subsample (for the error search). `total` is the number of values it will see (for the tail size)."""

    def __init__(self, total: int, cfg: IfmrConfig):
        self.cfg = cfg
        self.total = total
        self.k = max(1, total - math.ceil(min(cfg.max_percentile, cfg.min_percentile) * total) + 1)
        self.top: list[np.ndarray] = []
        self.bottom: list[np.ndarray] = []
        self.samples: list[np.ndarray] = []
        self.stride = max(1, total // SEARCH_SAMPLES)

    def add(self, x: np.ndarray) -> None:
        flat = np.asarray(x, np.float32).ravel()
        k = min(self.k, flat.size)
        sample = flat[:: self.stride].copy()
        self.top.append(_extreme(flat, k, sample, largest=True))
        self.bottom.append(_extreme(flat, k, sample, largest=False))
        self.samples.append(sample)

    def _percentile(self, descending: bool, pct: float) -> float:
        """The value at position ceil(pct * n) of the sorted (ascending, or descending) values, 1-based."""
        n = self.total
        rank = max(1, math.ceil(pct * n))  # 1-based rank in that order
        tail = n - rank  # values beyond it
        vals = np.sort(np.concatenate(self.bottom if descending else self.top))
        if descending:
            return float(vals[min(tail, vals.size - 1)])
        return float(vals[max(vals.size - 1 - tail, 0)])

    def calibrate(self) -> tuple[float, int, dict]:
        """IFMR: (scale_d, offset, details)."""
        cfg = self.cfg
        cmax = self._percentile(False, cfg.max_percentile)
        cmin = self._percentile(True, cfg.min_percentile)
        data = np.concatenate(self.samples + self.top + self.bottom).astype(np.float32)
        best = None
        for f in cfg.factors():
            scale, offset = act_params(f * cmin, f * cmax, cfg.with_offset)
            err = float(np.sum((fake_quant(data, scale, offset) - data) ** 2))
            if best is None or err < best[0]:
                best = (err, float(f), scale, offset)
        _, factor, scale, offset = best
        return scale, offset, {"clip_min_init": cmin, "clip_max_init": cmax, "factor": factor}


def arq_scales(w: np.ndarray, axis: int, channel_wise: bool) -> np.ndarray:
    """ARQ: symmetric weight scales, max|w| / 127 per output channel (`axis`) or one for the tensor. A channel of
    zeros gets scale 1 (its weights quantize to 0 either way)."""
    w = np.asarray(w, np.float64)
    if channel_wise:
        amax = np.max(np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)), axis=1)
    else:
        amax = np.array([np.max(np.abs(w))])
    scales = amax / WEIGHT_MAX
    return np.where(scales > 0, scales, 1.0)


def quantize_weight(w: np.ndarray, scales: np.ndarray, axis: int) -> np.ndarray:
    """INT8 weights (as int32 numbers): clip(round_half_even(w / scale), -127, 127) per channel."""
    shape = [1] * w.ndim
    if scales.size > 1:
        shape[axis] = scales.size
    return np.clip(np.rint(np.asarray(w, np.float64) / scales.reshape(shape)), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int32)


def calibrate_activations(tensors: Callable[[np.ndarray], dict[str, np.ndarray]], inputs: list[np.ndarray],
                          names: list[str], cfg: IfmrConfig,
                          progress: Callable[[int], None] | None = None) -> dict[str, tuple[float, int, dict]]:
    """IFMR for each named tensor over every calibration input: `tensors(x)` returns the tensors one model input x
    makes. Returns name -> (scale_d, offset, details)."""
    observers: dict[str, ActivationObserver] = {}
    for i, x in enumerate(inputs):
        got = tensors(x)
        for n in names:
            if n not in observers:
                observers[n] = ActivationObserver(int(got[n].size) * len(inputs), cfg)
            observers[n].add(got[n])
        if progress:
            progress(i)
    return {n: obs.calibrate() for n, obs in observers.items()}

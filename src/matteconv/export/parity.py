"""The parity rule every export is kept by: the converted model's matte on a real photo against PyTorch's.

Within PARITY_MAX (1e-3 max |d alpha|) of PyTorch fp32 it passes outright. Beyond that, the question is whether
the difference is fp32 rounding, which grows with the input size (a 2048x2048 export differs from PyTorch by
1.4e-3 with no conversion error at all): PyTorch is run once more in float64 and the export passes when it is no
further from that float64 matte than FLOOR_FACTOR times PyTorch fp32's own distance from it, measured at that
size on that photo. A real conversion bug (a wrong resize mode, a missing bias) is 5e-3..1 at any size.
NaN or Inf never passes: from PyTorch it is the checkpoint's problem, from the runtime the converter's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..numeric import require_finite
from ..errors import MatteconvError

PARITY_MAX = 1e-3  # max |d alpha| vs PyTorch fp32: the fp32 noise floor at 512 is ~4e-4 (docs/design.md section 6)
FLOOR_FACTOR = 2.0  # two fp32 implementations can each be one floor away from float64, in opposite directions


@dataclass
class Parity:
    max_abs: float  # vs PyTorch fp32
    mean_abs: float
    tolerance: float  # what it was judged against (PARITY_MAX, or FLOOR_FACTOR x the measured floor)
    floor: float | None = None  # PyTorch fp32 vs float64, when it had to be measured
    vs_float64: float | None = None  # the export vs float64, when measured


def judge(got: np.ndarray, ref: np.ndarray, run_float64: Callable[[], np.ndarray], where, checkpoint,
          runtime: str) -> Parity:
    """Keep or refuse an export: `got` its alpha, `ref` PyTorch fp32's, `run_float64` PyTorch in float64 (lazy)."""
    require_finite(ref, checkpoint, "the model's output in PyTorch",
                   "; the checkpoint's weights are damaged (nothing written)")
    require_finite(got, where, f"{runtime}'s output", " while PyTorch's is finite; not written (a converter bug, "
                   "please report it)")
    d = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    diff, mean = float(d.max()), float(d.mean())
    if diff <= PARITY_MAX:
        return Parity(diff, mean, PARITY_MAX)
    ref64 = np.asarray(run_float64(), np.float64)
    floor = float(np.abs(np.asarray(ref, np.float64) - ref64).max())
    err = float(np.abs(np.asarray(got, np.float64) - ref64).max())
    tol = max(PARITY_MAX, FLOOR_FACTOR * floor)
    if err <= tol:
        return Parity(diff, mean, tol, floor, err)
    raise MatteconvError(f"{where}: {runtime} differs from PyTorch by max |d alpha| = {diff:.3g} (> {PARITY_MAX:g}) "
                         f"and from PyTorch float64 by {err:.3g}, more than {FLOOR_FACTOR:g}x PyTorch fp32's own "
                         f"error at this size ({floor:.3g}); not written")

"""NaN and Inf never pass: NaN compares as within any tolerance (every `d > tol` is False), so model outputs
are checked for non-finite values before any metric or tolerance sees them (verify, compare, matte, export)."""
from __future__ import annotations

import numpy as np

from .errors import MatteconvError


def nonfinite(a: np.ndarray) -> str | None:
    """'3 NaN' or '2 NaN and 1 Inf' when an array holds non-finite values, None when it holds none."""
    a = np.asarray(a)
    if a.dtype.kind != "f" or np.isfinite(a).all():
        return None
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    return " and ".join(f"{n} {w}" for n, w in ((nan, "NaN"), (inf, "Inf")) if n)


def require_finite(a: np.ndarray, where, what: str = "model output", hint: str = "") -> None:
    """One line when `a` holds NaN or Inf (NaN compares as within any tolerance, so it must be caught first)."""
    bad = nonfinite(a)
    if bad:
        raise MatteconvError(f"{where}: {what} contains {bad} value(s){hint}")

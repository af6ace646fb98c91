"""The plan of an exact rewrite for global average pools that atc would run on the AI CPU, and where it pays.

The emitter: export/onnx/passes/global_pool_cascade.py; the rule itself (`matteconv profile`'s avgpool-aicpu
warning, ascend/profile/cost.py `avgpool_on_aicpu`) reads the limits from here, as ascend/rules.py reads the
depthwise buffer rule from export/depthwise_plan.py.

The rule (atc warning W11001, Ascend/ModelZoo-PyTorch ACL_PyTorch/contrib/cv/segmentation/FastSCNN/README.md):
an AvgPool whose window is over 256 elements, or whose stride is over 63, runs on the AI CPU. MODNet's SE block
pools its 1/32 map globally: 16x16 = 256 at 512x512 (AI Core), 22x40 = 880 at 704x1280 (AI CPU).

The plan: AveragePool stages of kernel = stride = (a, b), a dividing the map's height and b its width, each within
the rule and CANN's pooling/depthwise buffer rule (Fh*Fw*32 + W*(31*stride_h + Fw) <= 32768, depthwise_plan.py:
the Caffe lowering holds AVE pooling to it as well), until the map left is within 256 elements for the last,
global, pool. Exact because every block has the same number of elements: the mean of k equal-sized block means
is the mean (sum / (k*m) = (sum of the k block sums / m) / k).

Where it pays, in `matteconv profile`'s cost model: the AI CPU pool costs C*H*W elements at the AI CPU rate
(hardware.Soc.aicpu_elements_per_s, 72.1 M/s from the ICNet TransData) plus one launch; the cascade costs one
more launch per stage (fitted.json op_overhead_us, 18.5 us) and a memory-bound read of the map (about 0.02 ns
per element at the fitted bandwidth, against the AI CPU's 13.9 ns). So the cascade wins when C*H*W is above
the stages times `AICPU_ELEMENTS_PER_LAUNCH`, the elements the AI CPU converts in one launch's time (18.46 us x
72.1 M/s = 1331). The export cannot ask the cost model (it lies above the export, docs/architecture.md
"Layers"), so the number is kept here and tests/test_pool_cascade.py holds it to the cost model: over a grid of
channels and maps the pass rewrites exactly the pools the model predicts faster rewritten.
"""
from __future__ import annotations

from functools import lru_cache

from .depthwise_plan import BUDGET, depthwise_need

AVGPOOL_AICPU_WINDOW = 256  # W11001: AvgPool window (kh*kw) above this runs on the AI CPU (FastSCNN README)
AVGPOOL_AICPU_STRIDE = 63  # ... or a stride above this
AICPU_ELEMENTS_PER_LAUNCH = 1331  # fitted launch overhead x AI CPU rate (see the module docstring)
MAX_STAGES = 4  # longer cascades are not searched (22x40 needs 1 stage; a 1/32 map of 8192x8192 needs 2)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def stage_fits(a: int, b: int, width: int) -> bool:
    """An AveragePool a x b with stride a x b on a map `width` wide runs on the AI Core: window within 256
    elements, stride within 63 (W11001), and CANN's pooling buffer rule (depthwise_plan.depthwise_need)."""
    return (a * b <= AVGPOOL_AICPU_WINDOW and max(a, b) <= AVGPOOL_AICPU_STRIDE
            and depthwise_need(a, b, a, width) <= BUDGET)


def plan_cascade(h: int, w: int) -> list[tuple[int, int]] | None:
    """The windows (a, b) of the AveragePool stages that bring an H x W map within the global pool's window (the
    last, global, stage is not listed); [] if H*W is within it already; None if no cascade of at most MAX_STAGES
    evenly dividing windows does. Fewest stages first; among those, the largest first window (the smallest map
    written: these pools are memory-bound), then the largest second, and so on."""

    @lru_cache(maxsize=None)
    def best(hh: int, ww: int, depth: int):
        if hh * ww <= AVGPOOL_AICPU_WINDOW:
            return ()
        if depth == 0:
            return None
        found, found_key = None, None
        for a in _divisors(hh):
            for b in _divisors(ww):
                if a * b == 1 or not stage_fits(a, b, ww):
                    continue
                rest = best(hh // a, ww // b, depth - 1)
                if rest is None:
                    continue
                cand = ((a, b), *rest)
                key = (len(cand), [-x * y for x, y in cand])
                if found_key is None or key < found_key:
                    found, found_key = cand, key
        return found

    plan = best(h, w, MAX_STAGES)
    return None if plan is None else list(plan)


def cascade_pays(elements: int, plan: list[tuple[int, int]] | None) -> bool:
    """Whether the rewrite of a global pool over `elements` (C*H*W) values is predicted faster than the AI CPU
    pool: the cascade `plan` adds one launch per stage; None (one ReduceMean instead) adds none."""
    return elements > AICPU_ELEMENTS_PER_LAUNCH * (len(plan) if plan else 0)

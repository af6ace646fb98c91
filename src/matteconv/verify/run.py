"""Run stages over a golden set and judge each against its tolerance (max and mean |d| vs float64 golden)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..numeric import nonfinite
from . import metrics
from .golden import GoldenSet
from .stages import Stage

METRIC_KEYS = ("max_abs", "mean_abs", "sad", "mse", "grad", "conn")


@dataclass
class StageResult:
    name: str
    artifact: str
    status: str  # passed | failed | skipped | error
    reason: str = ""
    tolerance: dict = field(default_factory=dict)
    worst: dict = field(default_factory=dict)  # metric -> worst value over inputs
    worst_input: str = ""
    per_input: list[dict] = field(default_factory=list)
    baseline: dict | None = None  # worst metrics of the stage's baseline comparison, if any
    inputs: dict | None = None  # worst model-input differences (input_*_lsb), if the stage is judged on them
    seconds: float = 0.0
    alphas: list[np.ndarray] = field(default_factory=list, repr=False)


@dataclass
class VerifyReport:
    golden: str
    size: tuple[int, int]
    inputs: list[str]
    results: list[StageResult]
    required: list[str]

    @property
    def floor(self) -> StageResult | None:
        return next((r for r in self.results if r.name == "torch" and r.status in ("passed", "failed")), None)

    @property
    def ok(self) -> bool:
        for r in self.results:
            if r.status in ("failed", "error"):
                return False
            if r.status == "skipped" and r.name in self.required:
                return False
        return all(any(r.name == q for r in self.results) for q in self.required)


def _worst(rows: list[dict]) -> tuple[dict, str]:
    worst = {k: max(r[k] for r in rows) for k in METRIC_KEYS}
    return worst, max(rows, key=lambda r: r["max_abs"])["input"]


def run_stage(stage: Stage, gset: GoldenSet, frames, prevs, goldens, keep_alphas: bool = False,
              progress: Callable[[], None] | None = None) -> StageResult:
    tol = gset.tolerance(stage.name)
    if stage.skip:
        return StageResult(stage.name, stage.artifact, "skipped", stage.skip, tol)
    if stage.error:
        return StageResult(stage.name, stage.artifact, "error", stage.error, tol)
    t0 = time.perf_counter()
    rows, base_rows, alphas, input_rows = [], [], [], []
    try:
        for item, frame, prev, gold in zip(gset.items, frames, prevs, goldens):
            alpha = np.asarray(stage.run(frame, prev), dtype=np.float64)
            bad = nonfinite(alpha)
            if bad:  # NaN compares as within any tolerance: it must fail before any metric is computed
                return StageResult(stage.name, stage.artifact, "failed", f"model output contains {bad} value(s) "
                                   f"on input {item.name}", tol, seconds=time.perf_counter() - t0)
            rows.append({"input": item.name, **metrics.all_metrics(alpha, gold)})
            if stage.baseline is not None:
                base = np.asarray(stage.baseline(frame, prev), dtype=np.float64)
                base_rows.append({"input": item.name, **metrics.all_metrics(alpha, base)})
            if stage.input_check is not None:
                input_rows.append(stage.input_check(frame))
            if keep_alphas:
                alphas.append(alpha.astype(np.float32))
            if progress:
                progress()
    except Exception as e:  # a runtime failing on one input is a stage error, reported, not a crash
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return StageResult(stage.name, stage.artifact, "error", msg, tol, seconds=time.perf_counter() - t0)
    worst, worst_input = _worst(rows)
    baseline = _worst(base_rows)[0] if base_rows else None
    inputs = {k: max(r[k] for r in input_rows) for k in input_rows[0]} if input_rows else None
    judged = {**worst, **(baseline or {}), **(inputs or {})}
    over = [f"{k} {judged[k]:.3g} > {v:g}" for k, v in tol.items() if not judged[k] <= v]  # NaN fails too
    status = "failed" if over else "passed"
    reason = ("; ".join(over) + (f" ({stage.baseline_label})" if stage.baseline_label else "")) if over else ""
    return StageResult(stage.name, stage.artifact, status, reason, tol, worst, worst_input, rows, baseline,
                       inputs, time.perf_counter() - t0, alphas)


def verify(gset: GoldenSet, stages: list[Stage], required: list[str] = (), keep_alphas: bool = False,
           progress: Callable[[str], None] | None = None) -> VerifyReport:
    frames, prevs = gset.frames(), gset.prev_alphas()
    goldens = [it.golden_alpha().astype(np.float64) for it in gset.items]
    results = []
    for stage in stages:
        tick = (lambda s=stage.name: progress(s)) if progress else None
        results.append(run_stage(stage, gset, frames, prevs, goldens, keep_alphas, tick))
    return VerifyReport(str(gset.root), gset.size, [it.name for it in gset.items], results, list(required))

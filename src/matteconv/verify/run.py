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
# The same max / mean over the pixels where the golden alpha is confident (metrics.confident_errors): reported for
# every stage, judged only where a tolerance names them (the fp16 stages of golden/hard).
CONFIDENT_KEYS = ("confident_max_abs", "confident_mean_abs")
# Against the exact label of a composite (golden/real: the cut-out's own alpha), where the set has one: matting
# accuracy itself, reported (worst over the inputs that have a label), not judged.
LABEL_KEYS = ("label_sad", "label_mse", "label_grad", "label_conn")
# A stage judged against a prediction (om) may be this many times as far from its reference as the predicted .om
# (the fp16 emulator) on the same input, plus a floor for fp16 rounding noise (a few ulp of 1.0, 4.9e-4 each)
# that a device summing in another order adds even where the prediction is exact.
PREDICTED_FACTOR = 2.0
PREDICTED_FLOOR = {"max_abs": 4e-3, "mean_abs": 1e-4}


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
    label: str = ""  # how the report names the stage ("" = its name)
    predicted: dict | None = None  # for stages judged against a prediction: the predicted .om's worst errors


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
    worst = {k: max(r[k] for r in rows) for k in METRIC_KEYS + CONFIDENT_KEYS if k in rows[0]}
    if "confident_share" in rows[0]:  # the least confident input's share of judged pixels
        worst["confident_share"] = min(r["confident_share"] for r in rows)
    for k in LABEL_KEYS:
        labelled = [r[k] for r in rows if k in r]
        if labelled:
            worst[k] = max(labelled)
    return worst, max(rows, key=lambda r: r["max_abs"])["input"]


def run_stage(stage: Stage, gset: GoldenSet, frames, prevs, goldens, keep_alphas: bool = False,
              progress: Callable[[], None] | None = None) -> StageResult:
    tol = gset.tolerance(stage.tolerance_key or stage.name)
    label = stage.label or ""
    if stage.skip:
        return StageResult(stage.name, stage.artifact, "skipped", stage.skip, tol, label=label)
    if stage.error:
        return StageResult(stage.name, stage.artifact, "error", stage.error, tol, label=label)
    t0 = time.perf_counter()
    rows, base_rows, alphas, input_rows, pred_rows = [], [], [], [], []
    labels = {it.name: it.label_alpha() for it in gset.items}
    try:
        for item, frame, prev, gold in zip(gset.items, frames, prevs, goldens):
            alpha = np.asarray(stage.run(frame, prev), dtype=np.float64)
            bad = nonfinite(alpha)
            if bad:  # NaN compares as within any tolerance: it must fail before any metric is computed
                return StageResult(stage.name, stage.artifact, "failed", f"model output contains {bad} value(s) "
                                   f"on input {item.name}", tol, seconds=time.perf_counter() - t0)
            rows.append({"input": item.name, **metrics.all_metrics(alpha, gold), **metrics.confident_errors(alpha, gold)})
            if labels[item.name] is not None:
                m = metrics.all_metrics(alpha, labels[item.name])
                rows[-1].update({k: m[k[len("label_"):]] for k in LABEL_KEYS})
            ref = gold
            if stage.baseline is not None:
                ref = base = np.asarray(stage.baseline(frame, prev), dtype=np.float64)
                base_rows.append({"input": item.name, **metrics.all_metrics(alpha, base)})
            if stage.predict is not None:
                pred = np.asarray(stage.predict(frame, prev), dtype=np.float64)
                pred_rows.append(against_prediction(item.name, alpha, pred, ref))
            if stage.input_check is not None:
                input_rows.append(stage.input_check(frame))
            if keep_alphas:
                alphas.append(alpha.astype(np.float32))
            if progress:
                progress()
    except Exception as e:  # a runtime failing on one input is a stage error, reported, not a crash
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return StageResult(stage.name, stage.artifact, "error", msg, tol, seconds=time.perf_counter() - t0,
                           label=label)
    worst, worst_input = _worst(rows)
    baseline = _worst(base_rows)[0] if base_rows else None
    inputs = {k: max(r[k] for r in input_rows) for k in input_rows[0]} if input_rows else None
    predicted = None
    if pred_rows:  # judged per input against the prediction, not against the fixed tolerance
        over = [f"{r['input']}: {k} {r[k]:.3g} > {r['allowed_' + k]:.3g} (predicted {r['predicted_' + k]:.3g})"
                for r in pred_rows for k in ("max_abs", "mean_abs") if not r[k] <= r["allowed_" + k]]
        predicted = {k: max(r[k] for r in pred_rows) for k in pred_rows[0] if k != "input"}
        tol = {"max_abs": predicted["allowed_max_abs"], "mean_abs": predicted["allowed_mean_abs"],
               "rule": f"{PREDICTED_FACTOR:g} x predicted .om error + {PREDICTED_FLOOR['max_abs']:g} / "
                       f"{PREDICTED_FLOOR['mean_abs']:g}, per input"}
    else:
        judged = {**worst, **(baseline or {}), **(inputs or {})}
        over = [f"{k} {judged[k]:.3g} > {v:g}" for k, v in tol.items() if not judged[k] <= v]  # NaN fails too
    status = "failed" if over else "passed"
    reason = ("; ".join(over) + (f" ({stage.baseline_label})" if stage.baseline_label else "")) if over else ""
    return StageResult(stage.name, stage.artifact, status, reason, tol, worst, worst_input, rows, baseline,
                       inputs, time.perf_counter() - t0, alphas, label, predicted)


def against_prediction(name: str, alpha: np.ndarray, pred: np.ndarray, ref: np.ndarray) -> dict:
    """The stage's and the prediction's max/mean |d| from the same reference, and what the stage is allowed."""
    row = {"input": name}
    for key, err in (("max_abs", lambda d: float(d.max())), ("mean_abs", lambda d: float(d.mean()))):
        row[key] = err(np.abs(alpha - ref))
        row["predicted_" + key] = err(np.abs(pred - ref))
        row["allowed_" + key] = PREDICTED_FACTOR * row["predicted_" + key] + PREDICTED_FLOOR[key]
    return row


def verify(gset: GoldenSet, stages: list[Stage], required: list[str] = (), keep_alphas: bool = False,
           progress: Callable[[str], None] | None = None) -> VerifyReport:
    frames, prevs = gset.frames(), gset.prev_alphas()
    goldens = [it.golden_alpha().astype(np.float64) for it in gset.items]
    results = []
    for stage in stages:
        tick = (lambda s=stage.name: progress(s)) if progress else None
        results.append(run_stage(stage, gset, frames, prevs, goldens, keep_alphas, tick))
    return VerifyReport(str(gset.root), gset.size, [it.name for it in gset.items], results, list(required))

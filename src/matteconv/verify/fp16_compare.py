"""`compare --precision fp16`: where fp16 hurts a checkpoint. Every module's output under the device model
(matteconv.fp16, torch emulator) against the same folded model in fp32, on one golden input: the relative error
per module in execution order, its growth over the module before, the first module where it crosses the
threshold, and every fp16 hazard by module path:
- overflow: a module output beyond fp16's range (|x| > 65504 in fp32, or inf/nan under fp16);
- square overflow: an InstanceNorm whose (x - mean)^2 exceeds 65504, which breaks a variance computed in fp16
  (the Caffe `ascend` lowering squares with Power, an fp16-only kernel on Ascend310);
- variance underflow: an InstanceNorm channel whose variance is below fp16's smallest normal (6.1e-5), which a
  variance held in fp16 cannot represent accurately.
These flagged modules are what `matteconv om --keep-fp32 auto` keeps in fp32.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from ..errors import MatteconvError
from ..fp16.device import FP16_MAX, FP16_MIN_NORMAL

FP16_REL_THRESHOLD = 1e-2  # relative error (max|d| / max|ref|) where a module counts as hurt: ~20 fp16 ulps


@dataclass
class Fp16Row:
    index: int
    module: str
    op: str  # the module's class
    shape: tuple[int, ...]
    max_abs: float
    max_ref: float
    rel: float
    growth: float  # rel / the previous row's rel (nan for the first)


@dataclass
class Fp16Issue:
    module: str
    kind: str  # overflow | square overflow | variance underflow
    value: float
    detail: str


@dataclass
class Fp16CompareReport:
    reference: str
    golden: str
    input_name: str
    size: tuple[int, int]
    rows: list[Fp16Row]
    issues: list[Fp16Issue]
    first_jump: Fp16Row | None
    threshold: float
    alpha_max_abs: float  # fp16-emulated alpha vs fp32 alpha
    alpha_vs_golden: float  # fp16-emulated alpha vs the float64 golden alpha (the fp16 stage's number)
    seconds: float = 0.0
    input_errors: dict[str, float] = field(default_factory=dict)  # predicted alpha max|d| vs golden, per input
    # (filled when the input was picked as the worst; empty when --input named it)

    def flagged(self) -> list[str]:
        """Module paths to keep in fp32: every hazard, then the first module over the threshold."""
        out = [i.module for i in self.issues]
        if self.first_jump is not None:
            out.append(self.first_jump.module)
        return list(dict.fromkeys(out))

    def fp16_only(self) -> list[str]:
        """The flagged modules Ascend310 cannot keep in fp32 (convolutions: fp16-only kernels, torch_emu.FP16_ONLY):
        `--keep-fp32 auto` lists their layers, but the chip and the prediction compute them in fp16 anyway."""
        from ..fp16.torch_emu import FP16_ONLY

        names = {c.__name__ for c in FP16_ONLY}
        only = {r.module for r in self.rows if r.op in names}
        return [m for m in self.flagged() if m in only]

    def worst(self, n: int = 12) -> list[Fp16Row]:
        ranked = sorted((r for r in self.rows if np.isfinite(r.rel)), key=lambda r: -r.rel)[: max(n, 0)]
        return sorted(ranked, key=lambda r: r.index)

    def to_dict(self) -> dict:
        from ..fileio import json_safe

        return json_safe({**asdict(self), "flagged": self.flagged(), "fp16_only": self.fp16_only()})


def _norm_issues(path: str, x: np.ndarray) -> list[Fp16Issue]:
    """Hazards of an InstanceNorm's input x (N, C, H, W) if its variance were computed in fp16."""
    x = x.astype(np.float64)
    with np.errstate(invalid="ignore"):  # an input already inf (an overflow upstream, reported there) gives nan
        centred = x - x.mean(axis=(2, 3), keepdims=True)
        sq = float((centred ** 2).max())
        var = (centred ** 2).mean(axis=(2, 3))
    out = []
    if sq > FP16_MAX:
        out.append(Fp16Issue(path, "square overflow", sq, f"max (x - mean)^2 = {sq:.3g} > {FP16_MAX:g}"))
    if float(var.min()) < FP16_MIN_NORMAL:
        n = int((var < FP16_MIN_NORMAL).sum())
        out.append(Fp16Issue(path, "variance underflow", float(var.min()),
                             f"{n} channel(s) with variance < {FP16_MIN_NORMAL:.2g} (min {float(var.min()):.3g})"))
    return out


def compare_fp16(model: nn.Module, x: np.ndarray) -> tuple[list[Fp16Row], list[Fp16Issue], np.ndarray, np.ndarray]:
    """(rows, issues, fp32 alpha, fp16-emulated alpha) for one normalised input x (1xCxHxW) through `model`."""
    from ..fp16.torch_emu import device_form, folded_form, record_modules

    def is_norm(_path, m):
        return isinstance(m, nn.InstanceNorm2d)

    ref, _, alpha32 = record_modules(folded_form(model), x, fp16=False)
    emu, norm_inputs, alpha16 = record_modules(device_form(model), x, fp16=True, inputs_of=is_norm)
    mods = dict(model.named_modules())
    rows, issues, prev = [], [], float("nan")
    for path, r in ref.items():
        e = emu.get(path)
        if e is None or e.shape != r.shape:
            continue
        d = float(np.max(np.abs(e.astype(np.float64) - r))) if r.size else 0.0
        big = float(np.max(np.abs(r))) if r.size else 0.0
        rel = d / (big + 1e-12) if np.isfinite(d) else float("inf")
        op = type(mods[path]).__name__ if path in mods else "?"
        rows.append(Fp16Row(len(rows), path, op, tuple(r.shape), d, big, rel, rel / prev if prev else float("nan")))
        prev = rel
        if big > FP16_MAX or not np.all(np.isfinite(e)):
            issues.append(Fp16Issue(path, "overflow", big, f"max |x| = {big:.3g} (fp32); fp16 holds up to {FP16_MAX:g}"))
    for path, xin in norm_inputs.items():
        issues += _norm_issues(path, xin)
    return rows, issues, alpha32, alpha16


def compare_checkpoint_fp16(ckpt_path: str | Path, golden_dir: str | Path, input_name: str | None = None,
                            threshold: float = FP16_REL_THRESHOLD) -> Fp16CompareReport:
    """`matteconv compare CKPT --precision fp16` on one input of a golden set."""
    from ..model.checkpoint import load_checkpoint
    from .compare import _pick_input
    from .golden import load_golden, model_input

    t0 = time.perf_counter()
    gset = load_golden(golden_dir)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.in_channels != gset.in_channels:
        raise MatteconvError(f"{ckpt_path}: takes {ckpt.in_channels} input channels, the golden set {gset.root} "
                             f"was made for {gset.in_channels}")
    input_errors: dict[str, float] = {}
    if input_name is None and len(gset.items) > 1:  # the input where the predicted .om is furthest from golden
        from ..fp16.torch_emu import Fp16TorchBackend
        from .compare import worst_input

        idx, input_errors = worst_input(gset, Fp16TorchBackend(ckpt.model))
    else:
        idx = _pick_input(gset, input_name)
    x = model_input(gset.frames()[idx], gset.prev_alphas()[idx])
    rows, issues, alpha32, alpha16 = compare_fp16(ckpt.model, x)
    first = next((r for r in rows if not np.isfinite(r.rel) or r.rel > threshold), None)
    alpha16 = alpha16[0, 0].astype(np.float64)
    alpha_diff = float(np.max(np.abs(alpha16 - alpha32[0, 0])))
    gold = gset.items[idx].golden_alpha().astype(np.float64)
    vs_gold = float(np.max(np.abs(alpha16 - gold))) if gold.shape == alpha16.shape else float("nan")
    return Fp16CompareReport(str(ckpt_path), str(gset.root), gset.items[idx].name, gset.size, rows, issues, first,
                             threshold, alpha_diff, vs_gold, time.perf_counter() - t0, input_errors)


def keep_fp32_layers(ckpt_path: str | Path, model_path: str | Path, golden_dir: str | Path,
                     input_name: str | None = None) -> tuple[list[str], list[str]]:
    """`om --keep-fp32 auto`: (layer names of MODEL inside the modules compare --precision fp16 flags, those
    modules). Layer names are matched to module paths as `compare` does (ONNX scopes, Caffe fx paths)."""
    from ..model.checkpoint import load_checkpoint
    from .compare import ModuleTree, _within, caffe_nodes, onnx_nodes, output_scope

    flagged = compare_checkpoint_fp16(ckpt_path, golden_dir, input_name).flagged()
    model_path = Path(model_path)
    tree = ModuleTree(load_checkpoint(ckpt_path).model)
    if model_path.suffix.lower() == ".onnx":
        import onnx

        nodes = onnx_nodes(onnx.load(str(model_path), load_external_data=False), tree)
    else:
        from ..export.caffe.writer import read_prototxt

        nodes = caffe_nodes(read_prototxt(model_path), tree, output_scope(tree.model, tree.model.in_channels))
    layers = [n.name for n in nodes if n.scope is not None and any(_within(n.scope, m) for m in flagged if m)]
    return list(dict.fromkeys(layers)), flagged
